/**
 * Program statistics: the kernel's `kind: "stats"` comm message, kept in the notebook metadata
 * (`metadata.alchemist.tasks[task]`) so the sidebar can show them after a page reload.
 */
import { INotebookModel } from '@jupyterlab/notebook';
import { PartialJSONObject } from '@lumino/coreutils';

/** One program's key numbers (null where unknown, e.g. accuracy without labeled dev rows). */
export interface IProgramStats {
  name: string;
  id: string;
  coverage: number | null;
  accuracy: number | null;
  conflicts: number | null;
  faults: number | null;
  invalid: number | null;
  status: string;
  /** What is wrong with a program that is not ok, in one line (absent from older kernels). */
  problem?: string | null;
}

/** The cost meter (USD; null where unknown). */
export interface ICost {
  spent_usd: number | null;
  estimate_usd: number | null;
  budget_usd: number | null;
  zero_shot_usd: number | null;
  ratio: number | null;
  requests: number;
  cache_hits: number;
  /** The meter's own wording (`$0.0123`, `local: N tokens, T s`, `unknown (...)`), when sent. */
  cost_text?: string | null;
  /** Requests whose price is unknown: the spent amount is then unknown, never $0. */
  unknown_cost_requests?: number | null;
}

/** Everything the sidebar shows about one task. */
export interface ITaskStats {
  task: string;
  label_model: string | null;
  programs: IProgramStats[];
  cost: ICost;
}

const KEY = 'alchemist';

/** The stored statistics of every task in the notebook, by task name. */
export function readStats(model: INotebookModel): Record<string, ITaskStats> {
  const stored = model.getMetadata(KEY) as
    | { tasks?: Record<string, ITaskStats> }
    | undefined;
  return stored?.tasks ?? {};
}

/** Store the latest statistics of one task (other tasks keep theirs). */
export function writeStats(model: INotebookModel, stats: ITaskStats): void {
  const tasks = { ...readStats(model), [stats.task]: stats };
  model.setMetadata(KEY, { tasks } as unknown as PartialJSONObject);
}
