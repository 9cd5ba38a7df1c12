/**
 * The sidebar: the programs of the current notebook with their key statistics and the cost
 * meter, read from the notebook metadata; clicking a program activates its cell.
 */
import { JupyterFrontEnd } from '@jupyterlab/application';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { LabIcon } from '@jupyterlab/ui-components';
import type { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import { findProgramCell } from './cells';
import { ICost, IProgramStats, ITaskStats, readStats } from './stats';

export const alchemistIcon = new LabIcon({
  name: 'alchemist_magics:flask',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24"><path class="jp-icon3" fill="#616161" ' +
    'd="M9 2h6v2h-1v5.2l5.6 9.7A2 2 0 0 1 17.9 22H6.1a2 2 0 0 1-1.7-3.1L10 9.2V4H9V2zm3 9.4L8.6 17h6.8L12 11.4z"/></svg>'
});

function number(value: number | null, digits = 3): string {
  return value === null || value === undefined ? '–' : value.toFixed(digits);
}

function money(value: number | null | undefined): string {
  return value === null || value === undefined ? 'unknown' : `$${value.toFixed(4)}`;
}

/** What was spent: the meter's own words when it sent them; never $0 for an unknown price. */
function spentText(cost: ICost): string {
  if (cost.unknown_cost_requests) {
    return cost.cost_text && /^(unknown|local)/.test(cost.cost_text)
      ? cost.cost_text
      : 'unknown';
  }
  return money(cost.spent_usd);
}

/** The cost meter in one line, in the words of the kernel's panel. */
export function costText(cost: ICost): string {
  const requests = cost.requests ?? 0;
  const how = requests
    ? `${requests} LLM request${requests === 1 ? '' : 's'}, ${cost.cache_hits ?? 0} from the cache`
    : 'no LLM request';
  const ratio = cost.ratio ? ` · the programs cost ${cost.ratio.toFixed(1)}x less` : '';
  const budget =
    cost.budget_usd === null || cost.budget_usd === undefined
      ? ''
      : ` · budget ${money(cost.budget_usd)}`;
  return (
    `Spent ${spentText(cost)} (${how}) · zero-shot every row ${money(cost.zero_shot_usd)}` +
    `${ratio}${budget}`
  );
}

/** The sidebar remembers whether it was open (the plugin has no layout restorer). */
const OPEN_KEY = 'alchemist_magics:sidebar-open';

/** The key numbers of a program row, in order: [key, label, text]. */
const STATS: [string, string, (p: IProgramStats) => string, string][] = [
  ['coverage', 'cov', p => number(p.coverage), 'share of train rows it votes on'],
  ['accuracy', 'dev acc', p => number(p.accuracy), 'accuracy on the labeled dev rows it votes on'],
  ['conflicts', 'conflicts', p => number(p.conflicts), 'share of train rows where another program disagrees'],
  ['faults', 'faults', p => String(p.faults ?? '–'), 'rows on which it raised'],
  ['status', '', p => p.status, 'how its last run went']
];

/** Lists the programs of the notebook the user is working in. */
export class AlchemistSidebar extends Widget {
  constructor(
    tracker: INotebookTracker,
    private _shell: JupyterFrontEnd.IShell
  ) {
    super();
    this.id = 'alchemist-sidebar';
    this.addClass('jp-alchemist-sidebar');
    this.title.icon = alchemistIcon;
    this.title.caption = 'Alchemist programs';
    tracker.currentChanged.connect((_, panel) => this._follow(panel));
    this._follow(tracker.currentWidget);
    this._reopen();
  }

  /** Open again after a page reload when it was open before (once the shell has restored its layout). */
  private _reopen(): void {
    let open = false;
    try {
      open = window.localStorage.getItem(OPEN_KEY) === 'true';
    } catch {
      return; // no storage (private mode): nothing remembered
    }
    if (!open) {
      return;
    }
    const restored = (this._shell as unknown as { restored?: Promise<unknown> }).restored;
    void Promise.resolve(restored).then(() => {
      if (!this.isVisible) {
        this._shell.activateById(this.id);
      }
    });
  }

  private _remember(open: boolean): void {
    try {
      window.localStorage.setItem(OPEN_KEY, String(open));
    } catch {
      // no storage: the sidebar starts closed next time
    }
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    this._remember(true);
  }

  protected onAfterHide(msg: Message): void {
    super.onAfterHide(msg);
    // a page being unloaded hides nothing, so this is the user closing it or picking another panel
    this._remember(false);
  }

  /** Show `panel`'s programs and keep them current as its metadata changes. */
  private _follow(panel: NotebookPanel | null): void {
    this._panel?.model?.metadataChanged.disconnect(this._render, this);
    this._panel = panel;
    if (panel) {
      void panel.context.ready.then(() => {
        if (this._panel === panel) {
          panel.model?.metadataChanged.connect(this._render, this);
          this._render();
        }
      });
    }
    this._render();
  }

  private _render(): void {
    const node = this.node;
    node.replaceChildren();
    const model = this._panel?.model;
    const tasks = model ? Object.values(readStats(model)) : [];
    if (!tasks.length) {
      const empty = document.createElement('p');
      empty.className = 'jp-alchemist-empty';
      empty.textContent = this._panel
        ? 'No programs in this notebook yet: run a %%alchemist cell.'
        : 'Open a notebook to see its programs.';
      node.appendChild(empty);
      return;
    }
    for (const task of tasks) {
      node.appendChild(this._taskView(task));
    }
  }

  private _taskView(stats: ITaskStats): HTMLElement {
    const section = document.createElement('section');
    section.className = 'jp-alchemist-task';
    section.dataset.task = stats.task;
    const title = document.createElement('h3');
    title.textContent = `${stats.task} · ${stats.programs.length} programs · ${stats.label_model ?? 'no label model'}`;
    title.title = title.textContent;
    const list = document.createElement('ul');
    for (const program of stats.programs) {
      // two lines per program, so the list fits a narrow sidebar: the name, then its numbers
      const row = document.createElement('li');
      row.className = 'jp-alchemist-program';
      row.classList.toggle('jp-alchemist-bad', program.status !== 'ok');
      row.dataset.name = program.name;
      row.dataset.status = program.status;
      const problem = program.problem ? `\n${program.problem}` : '';
      row.title = `${program.name}: go to its cell${problem}`;
      const name = document.createElement('div');
      name.className = 'jp-alchemist-name';
      name.textContent = program.name;
      name.title = `${program.name}${problem}`; // the full name where it is cut off
      const numbers = document.createElement('div');
      for (const [key, label, text, help] of STATS) {
        const stat = document.createElement('span');
        stat.className = 'jp-alchemist-stat';
        stat.dataset.key = key;
        stat.textContent = label ? `${label} ${text(program)}` : text(program);
        stat.title = help;
        numbers.appendChild(stat);
      }
      row.append(name, numbers);
      row.addEventListener('click', () => this._jump(stats.task, program.name));
      list.appendChild(row);
    }
    const cost = document.createElement('p');
    cost.className = 'jp-alchemist-cost';
    cost.textContent = costText(stats.cost);
    section.append(title, list, cost);
    return section;
  }

  /** Activate and scroll to the cell of one program. */
  private _jump(task: string, name: string): void {
    const panel = this._panel;
    if (!panel?.model) {
      return;
    }
    const index = findProgramCell(panel.model.sharedModel, task, name);
    if (index < 0) {
      return;
    }
    const notebook = panel.content;
    notebook.activeCellIndex = index;
    notebook.mode = 'command';
    void notebook.scrollToCell(notebook.widgets[index], 'center');
    this._shell.activateById(panel.id);
  }

  private _panel: NotebookPanel | null = null;
}
