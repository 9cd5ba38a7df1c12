/**
 * alchemist_magics for JupyterLab 4 and Notebook 7: handles the kernel's comm messages (insert
 * the program cells, store the statistics) and adds the programs sidebar.
 */
import {
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { Notification, ToolbarButton } from '@jupyterlab/apputils';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { Kernel, KernelMessage } from '@jupyterlab/services';
import { JSONObject } from '@lumino/coreutils';

import {
  ICellsMessage,
  insertProgramCells,
  programCells,
  removeProgramCells,
  setMarkerLine
} from './cells';
import { AlchemistSidebar, alchemistIcon } from './sidebar';
import { ITaskStats, writeStats } from './stats';

/** The comm target of alchemist_magics/ui/comm.py. */
const COMM_TARGET = 'alchemist_magics';

/** Insert the cells, tell the kernel what happened, and say when edited cells were kept. */
function onCells(
  panel: NotebookPanel,
  comm: Kernel.IComm,
  data: ICellsMessage
): void {
  const model = panel.model;
  const result = model ? insertProgramCells(model.sharedModel, data) : null;
  comm.send({
    kind: 'ack',
    found: result !== null,
    ...(result ?? {})
  } as unknown as JSONObject);
  if (result?.kept.length) {
    Notification.info(
      `alchemist: kept ${result.kept.length} edited program cell(s) (${result.kept.join(', ')}); ` +
        'run them to register your edits again.',
      { autoClose: 10000 }
    );
  } else if (!result) {
    Notification.warning(
      `alchemist: the %%alchemist cell ${data.cell_id} is not in ${panel.title.label}; ` +
        'the programs are in its output.',
      { autoClose: 10000 }
    );
  }
}

/** The `remove` and `marker` messages of `%alchemist remove|disable|enable`. */
interface IProgramEdit {
  kind: 'remove' | 'marker';
  task: string;
  name: string;
  cell_id: string | null;
  line?: string;
}

/** Route one comm_open of our target by its kind, then close the comm (nothing else follows). */
function onCommOpen(
  panel: NotebookPanel,
  comm: Kernel.IComm,
  msg: KernelMessage.ICommOpenMsg
): void {
  const data = msg.content.data as unknown as { kind?: string };
  const nb = panel.model?.sharedModel;
  if (data.kind === 'stats') {
    if (panel.model) {
      writeStats(panel.model, data as unknown as ITaskStats);
    }
  } else if (data.kind === 'remove' && nb) {
    const edit = data as unknown as IProgramEdit;
    removeProgramCells(nb, edit.task, edit.name, edit.cell_id);
  } else if (data.kind === 'sync-request') {
    syncNow.get(panel)?.();
  } else if (data.kind === 'marker' && nb) {
    const edit = data as unknown as IProgramEdit;
    setMarkerLine(nb, edit.task, edit.name, edit.cell_id, edit.line ?? '');
  } else {
    onCells(panel, comm, data as unknown as ICellsMessage);
  }
  comm.close();
}

/**
 * Tell the kernel about the notebook's program cells (ids, tasks, names, sources, in order)
 * whenever cells are deleted, moved or inserted, so its program set follows the notebook.
 * Sent only when the list of program cells changed since the last time.
 */
const syncNow = new WeakMap<NotebookPanel, () => void>();

function watchCells(panel: NotebookPanel): void {
  let last = '';
  let timer: ReturnType<typeof setTimeout> | null = null;
  // the kernel asks for the cells (`sync-request`, e.g. after loading a task in a fresh kernel)
  syncNow.set(panel, () => {
    last = '';
    sync();
  });
  const sync = () => {
    timer = null;
    const nb = panel.model?.sharedModel;
    const kernel = panel.sessionContext.session?.kernel;
    if (!nb || !kernel) {
      return;
    }
    const cells = programCells(nb);
    const signature = JSON.stringify(
      cells.map(c => [c.cell_id, c.task, c.name])
    );
    if (signature === last) {
      return;
    }
    last = signature;
    const comm = kernel.createComm(COMM_TARGET);
    comm.open({ kind: 'sync', cells } as unknown as JSONObject);
    comm.close();
  };
  void panel.context.ready.then(() => {
    const nb = panel.model?.sharedModel;
    last = JSON.stringify(
      nb ? programCells(nb).map(c => [c.cell_id, c.task, c.name]) : []
    );
    panel.model?.cells.changed.connect(() => {
      if (timer === null) {
        timer = setTimeout(sync, 200);
      }
    });
  });
}

/** Register the comm target on the panel's kernel, now and after every kernel change. */
function watchKernel(panel: NotebookPanel): void {
  const register = (kernel: Kernel.IKernelConnection | null | undefined) =>
    kernel?.registerCommTarget(COMM_TARGET, (comm, msg) =>
      onCommOpen(panel, comm, msg)
    );
  panel.sessionContext.kernelChanged.connect((_, change) =>
    register(change.newValue)
  );
  void panel.sessionContext.ready.then(() =>
    register(panel.sessionContext.session?.kernel)
  );
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'alchemist_magics:plugin',
  description:
    'Inserts the programs of %%alchemist cells as cells and lists them in a sidebar.',
  autoStart: true,
  requires: [INotebookTracker],
  activate: (app: JupyterFrontEnd, tracker: INotebookTracker) => {
    tracker.widgetAdded.connect((_, panel) => {
      watchKernel(panel);
      watchCells(panel);
    });
    tracker.forEach(panel => {
      watchKernel(panel);
      watchCells(panel);
    });
    const sidebar = new AlchemistSidebar(tracker, app.shell);
    app.shell.add(sidebar, 'right', { rank: 900 });
    // A toolbar icon on every notebook opens the sidebar: Notebook 7 shows no side-panel tabs.
    app.docRegistry.addWidgetExtension('Notebook', {
      createNew: (panel: NotebookPanel) => {
        const button = new ToolbarButton({
          icon: alchemistIcon,
          className: 'jp-alchemist-toolbar-button',
          tooltip: 'Show the alchemist programs',
          onClick: () => app.shell.activateById(sidebar.id)
        });
        panel.toolbar.insertItem(10, 'alchemist-programs', button);
        return button;
      }
    });
  }
};

export default plugin;
