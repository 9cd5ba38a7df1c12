/**
 * alchemist_magics for JupyterLab 4 and Notebook 7: handles the kernel's comm messages (insert
 * the program cells, store the statistics) and adds the programs sidebar.
 */
import {
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { Notification } from '@jupyterlab/apputils';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { Kernel, KernelMessage } from '@jupyterlab/services';

import { ICellsMessage, insertProgramCells } from './cells';
import { AlchemistSidebar } from './sidebar';
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
  comm.send({ kind: 'ack', found: result !== null, ...(result ?? {}) });
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

/** Route one comm_open of our target by its kind, then close the comm (nothing else follows). */
function onCommOpen(
  panel: NotebookPanel,
  comm: Kernel.IComm,
  msg: KernelMessage.ICommOpenMsg
): void {
  const data = msg.content.data as unknown as { kind?: string };
  if (data.kind === 'stats') {
    if (panel.model) {
      writeStats(panel.model, data as unknown as ITaskStats);
    }
  } else {
    onCells(panel, comm, data as unknown as ICellsMessage);
  }
  comm.close();
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
    tracker.widgetAdded.connect((_, panel) => watchKernel(panel));
    tracker.forEach(watchKernel);
    app.shell.add(new AlchemistSidebar(tracker, app.shell), 'right', {
      rank: 900
    });
  }
};

export default plugin;
