"""Page measurements for the panel's browser test and scripts/screenshot.py: WCAG contrast of text
against its effective background, clipped columns, and theme switching (through ``window.jupyterapp``)."""
from __future__ import annotations

# For every element matching `selector` under `root`: its text, its colour and the colour behind it
# (transparent layers composited up to the page), and the WCAG contrast ratio of the two.
CONTRAST_JS = """(base, selector) => {
  const parse = (text) => {
    const m = text.match(/rgba?\\(([^)]+)\\)/);
    if (!m) return [0, 0, 0, 0];
    const parts = m[1].split(/[ ,\\/]+/).filter(Boolean).map(Number);
    return [parts[0], parts[1], parts[2], parts.length > 3 ? parts[3] : 1];
  };
  const over = (top, bottom) => {  // top composited over an opaque bottom
    const a = top[3];
    return [0, 1, 2].map(i => top[i] * a + bottom[i] * (1 - a)).concat([1]);
  };
  const background = (node) => {
    const layers = [];
    for (let n = node; n && n.nodeType === 1; n = n.parentElement) {
      const c = parse(getComputedStyle(n).backgroundColor);
      if (c[3] > 0) layers.push(c);
      if (c[3] >= 1) break;
    }
    let colour = [255, 255, 255, 1];
    for (const layer of layers.reverse()) colour = over(layer, colour);
    return colour;
  };
  const lum = (c) => {
    const [r, g, b] = c.slice(0, 3).map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  return [...base.querySelectorAll(selector)].filter(n => n.innerText.trim()).map(n => {
    const bg = background(n);
    const fg = over(parse(getComputedStyle(n).color), bg);
    const [a, b] = [lum(fg), lum(bg)].sort((x, y) => x - y);
    return {text: n.innerText.trim().slice(0, 40), cls: n.className, fg: fg.map(Math.round).join(','),
            bg: bg.map(Math.round).join(','), ratio: (b + 0.05) / (a + 0.05)};
  });
}"""

# Every header cell of the matrix: is it inside the visible part of its scroll box (fits), or can the
# scroll box bring it into view (scrolls)? And is the scroll box itself inside the output area?
CLIPPING_JS = """(base) => {
  const box = base.querySelector('.alc-scroll');
  const area = base.closest('.jp-OutputArea-output') || base;
  const b = box.getBoundingClientRect(), a = area.getBoundingClientRect();
  const overflow = getComputedStyle(box).overflowX;
  return {
    box: {left: b.left, right: b.right, clientWidth: box.clientWidth, scrollWidth: box.scrollWidth, overflow},
    area: {left: a.left, right: a.right},
    viewport: window.innerWidth,
    columns: [...box.querySelectorAll('th')].map(th => {
      const r = th.getBoundingClientRect();
      return {text: th.innerText.trim(), left: r.left, right: r.right,
              fits: r.left >= b.left - 0.5 && r.right <= b.left + box.clientWidth + 0.5,
              reachable: r.right <= b.left + box.scrollWidth + 0.5};
    }),
  };
}"""


def set_theme(page, name: str) -> None:
    """Switch JupyterLab's theme (``JupyterLab Light`` / ``JupyterLab Dark``) and wait for it."""
    light = "true" if "Light" in name else "false"
    page.evaluate("(theme) => window.jupyterapp.commands.execute('apputils:change-theme', {theme})", name)
    page.wait_for_function("(light) => document.body.dataset.jpThemeLight === light", arg=light, timeout=30_000)
    page.wait_for_timeout(800)  # the theme's stylesheet applies after the attribute changes


def contrast(locator, selector: str) -> list[dict]:
    """Contrast of every non-empty ``selector`` element under the element of ``locator``."""
    return locator.evaluate(CONTRAST_JS, selector)


def clipping(locator) -> dict:
    """Where the matrix's columns are relative to its scroll box (``locator``: the panel element)."""
    return locator.evaluate(CLIPPING_JS)


def run_task(notebook, magic: int, timeout_s: float = 180) -> None:
    """Run the setup cell and the %%alchemist cell, and wait until the panel shows its matrix."""
    notebook.run(0)
    notebook.run(magic, timeout_s=timeout_s)
    panel(notebook, magic).locator("table.alchemist-matrix").wait_for(state="visible", timeout=60_000)


def panel(notebook, magic: int):
    """The live panel (the widget's HTML) in the output of the %%alchemist cell."""
    return notebook.cell(magic).locator(".jp-OutputArea .alc-widget .alc-panel").first


def layout(page, width: int = 1280, height: int = 900) -> None:
    """A ``width`` px window with the file browser closed and the alchemist sidebar open."""
    page.set_viewport_size({"width": width, "height": height})
    page.evaluate("() => window.jupyterapp.shell.collapseLeft()")
    page.evaluate("() => window.jupyterapp.shell.activateById('alchemist-sidebar')")
    page.locator("#alchemist-sidebar").wait_for(state="visible")
    page.wait_for_timeout(500)


# A program that raises on some rows: a failing status, a problem line and a red sidebar row.
FAULTY = ("%%alchemist_program spam boom\ndef boom(text):\n"
          "    return 1 if 'check' in text.lower() else (1 // 0 if 'love' in text.lower() else -1)\n")


def add_program_cell(notebook, magic: int, text: str = FAULTY) -> int:
    """Append a program cell (after the extension inserted its cells) and run it; returns its index."""
    page = notebook.page
    page.wait_for_function(f"() => window.jupyterapp.shell.currentWidget.content.widgets.length > {magic + 1}")
    index = len(notebook.cells())
    page.evaluate("([i, text]) => window.jupyterapp.shell.currentWidget.content.model.sharedModel"
                  ".insertCell(i, {cell_type: 'code', source: text})", [index, text])
    notebook.run(index)
    return index
