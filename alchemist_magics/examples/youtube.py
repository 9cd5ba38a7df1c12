"""Hand-written labeling programs for YouTube comment spam (HAM = 0, SPAM = 1).

They follow the Snorkel spam tutorial's ideas and are kept as plain source strings: the demo runs
them through exactly the same check / sandbox / label-model path as LLM-written programs.
"""

PROGRAMS = [
    '''
def spam_if_my_channel(text):
    """Spammers point at 'my channel' / 'my video'."""
    t = text.lower()
    return 1 if "my channel" in t or "my video" in t else -1
''',
    '''
def spam_if_subscribe(text):
    """Asking people to subscribe is spam."""
    return 1 if "subscribe" in text.lower() else -1
''',
    '''
import re

LINK = re.compile(r"https?://|www\\.|\\.com\\b")


def spam_if_link(text):
    """Links to other pages are spam."""
    return 1 if LINK.search(text.lower()) else -1
''',
    '''
def spam_if_please(text):
    """Requests ('please', 'plz') rather than comments."""
    t = text.lower()
    return 1 if "please" in t or "plz" in t else -1
''',
    '''
import re

CHECK_OUT = re.compile(r"check .*out")


def spam_if_check_out(text):
    """'check out my ...' is a classic spam opener."""
    return 1 if CHECK_OUT.search(text.lower()) else -1
''',
    '''
def ham_if_song(text):
    """Talking about the song itself is ham."""
    return 0 if "song" in text.lower() else -1
''',
    '''
def ham_if_short(text):
    """Short comments ('cool video!') are usually ham."""
    return 0 if len(text.split()) < 5 else -1
''',
    '''
def ham_if_love_or_views(text):
    """Fans talk about loving it or the view count."""
    t = text.lower()
    return "HAM" if ("love" in t or "billion" in t or "views" in t) and "http" not in t else None
''',
]
