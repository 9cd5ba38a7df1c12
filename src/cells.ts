/**
 * Program cells: insert one code cell per generated program below the `%%alchemist` cell,
 * replacing what an earlier run of that cell made, but never a cell the user has edited.
 */
import { INotebookModel } from '@jupyterlab/notebook';

type SharedNotebook = INotebookModel['sharedModel'];

/** One program as the kernel sends it (`cell` is the full text of the cell to insert). */
export interface IProgram {
  id: string;
  name: string;
  source: string;
  cell: string;
}

/** The `kind: "cells"` comm message of alchemist_magics/notebook/comm.py. */
export interface ICellsMessage {
  cell_id: string;
  task: string;
  /** Identifies this execution of the magic cell: stale cells of older runs are refused. */
  run?: string | null;
  programs: IProgram[];
}

/** What a program cell carries in `metadata.alchemist`. */
export interface IProgramCellMetadata {
  task: string;
  name: string;
  program_id: string;
  source_cell: string;
  source_hash: string;
  run?: string | null;
}

/** One program cell of the notebook as the kernel is told about it (ack and sync messages). */
export interface IProgramCellInfo {
  cell_id: string;
  task: string;
  name: string;
  source: string;
  edited: boolean;
}

/** What one insertion did; sent back to the kernel as the ack. */
export interface IInsertResult {
  inserted: string[];
  replaced: number;
  kept: string[];
  /** Programs not inserted because a cell elsewhere in the notebook already holds them. */
  elsewhere: string[];
  /** The task's program cells after the insertion, in notebook order. */
  cells: IProgramCellInfo[];
}

const MARKER = '%%alchemist_program';

/** `{task, name}` from a cell's first line `%%alchemist_program TASK [NAME] [--options]`. */
export function parseMarker(
  source: string
): { task: string; name: string | null } | null {
  const first = source.split('\n', 1)[0].trim();
  if (!first.startsWith(MARKER + ' ')) {
    return null;
  }
  const words = first
    .slice(MARKER.length)
    .trim()
    .split(/\s+/)
    .filter(w => !w.startsWith('--'));
  return words.length ? { task: words[0], name: words[1] ?? null } : null;
}

/**
 * Every program cell of the notebook in order (by its marker line; the name falls back to the
 * metadata, then to the function name the kernel would use).
 */
export function programCells(nb: SharedNotebook): IProgramCellInfo[] {
  const out: IProgramCellInfo[] = [];
  nb.cells.forEach((cell, i) => {
    if (cell.cell_type !== 'code') {
      return;
    }
    const source = cell.getSource();
    const marker = parseMarker(source);
    if (!marker) {
      return;
    }
    const meta = programMetadata(nb, i);
    const fn = /^def\s+([A-Za-z_]\w*)\s*\(/m.exec(source);
    const name = marker.name ?? meta?.name ?? (fn ? fn[1] : '');
    out.push({
      cell_id: cell.id,
      task: marker.task,
      name,
      source,
      edited: isEdited(nb, i)
    });
  });
  return out;
}

/** Delete the cells holding program `name` of `task` (by marker, or the given cell id). */
export function removeProgramCells(
  nb: SharedNotebook,
  task: string,
  name: string,
  cellId: string | null
): number {
  const doomed = programCells(nb)
    .filter(c => c.cell_id === cellId || (c.task === task && c.name === name))
    .map(c => nb.cells.findIndex(cell => cell.id === c.cell_id));
  nb.transact(() => {
    for (const i of doomed.sort((a, b) => b - a)) {
      nb.deleteCell(i);
    }
  });
  return doomed.length;
}

/** Replace the first (marker) line of the cells holding program `name` of `task`. */
export function setMarkerLine(
  nb: SharedNotebook,
  task: string,
  name: string,
  cellId: string | null,
  line: string
): number {
  const targets = programCells(nb).filter(
    c => c.cell_id === cellId || (c.task === task && c.name === name)
  );
  nb.transact(() => {
    for (const target of targets) {
      const cell = nb.cells.find(c => c.id === target.cell_id);
      if (cell) {
        const source = cell.getSource();
        const rest = source.includes('\n')
          ? source.slice(source.indexOf('\n'))
          : '';
        cell.setSource(line + rest);
      }
    }
  });
  return targets.length;
}

/**
 * FNV-1a over UTF-16 code units, as 8 hex digits: a synchronous hash that works on any origin
 * (crypto.subtle needs a secure context and is async). It only detects edits, so 32 bits do.
 */
export function textHash(text: string): string {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash.toString(16).padStart(8, '0');
}

/** The alchemist metadata of a cell, when it is a generated program cell. */
export function programMetadata(
  nb: SharedNotebook,
  index: number
): IProgramCellMetadata | undefined {
  const meta = nb.cells[index].getMetadata('alchemist') as
    | IProgramCellMetadata
    | undefined;
  return meta && typeof meta.source_cell === 'string' ? meta : undefined;
}

/** Whether the user changed the text of a generated program cell. */
export function isEdited(nb: SharedNotebook, index: number): boolean {
  const meta = programMetadata(nb, index);
  return !!meta && textHash(nb.cells[index].getSource()) !== meta.source_hash;
}

/**
 * Insert the programs' cells right after cell `cell_id`, in one transaction (one undo step).
 *
 * Cells an earlier run of the same source cell made are deleted when unedited; edited ones are
 * kept and their program is not inserted again. Returns null when the source cell is gone.
 */
export function insertProgramCells(
  nb: SharedNotebook,
  message: ICellsMessage
): IInsertResult | null {
  if (nb.cells.findIndex(c => c.id === message.cell_id) < 0) {
    return null;
  }
  const previous: number[] = [];
  nb.cells.forEach((_, i) => {
    if (programMetadata(nb, i)?.source_cell === message.cell_id) {
      previous.push(i);
    }
  });
  const kept = previous.filter(i => isEdited(nb, i));
  const stale = previous.filter(i => !kept.includes(i));
  const keptIds = kept.map(i => nb.cells[i].id);
  const keptNames = kept.map(i => programMetadata(nb, i)!.name);
  // A program that already has a cell elsewhere (typed by the user, or a tutorial's edit) gets no
  // second one: one cell per program, and that cell is what the kernel registers.
  const previousIds = previous.map(i => nb.cells[i].id);
  const elsewhere = programCells(nb).filter(
    c =>
      c.task === message.task &&
      !previousIds.includes(c.cell_id) &&
      message.programs.some(p => p.name === c.name)
  );
  const elsewhereNames = elsewhere.map(c => c.name);
  keptIds.push(...elsewhere.map(c => c.cell_id));
  keptNames.push(...elsewhereNames);
  const fresh = message.programs.filter(p => !keptNames.includes(p.name));
  // Inside a transaction `nb.cells` is not updated yet: track the cell ids here.
  const ids = nb.cells.map(c => c.id);
  nb.transact(() => {
    for (const i of [...stale].sort((a, b) => b - a)) {
      nb.deleteCell(i);
      ids.splice(i, 1);
    }
    // In the order of the run's programs: a kept (edited) cell stays where it is and the fresh
    // cells go around it, so re-running the magic does not reorder the programs.
    let at = ids.indexOf(message.cell_id) + 1;
    for (const p of message.programs) {
      if (elsewhereNames.includes(p.name)) {
        continue; // its cell stays where the user put it
      }
      const keptAt = keptNames.includes(p.name)
        ? ids.indexOf(keptIds[keptNames.indexOf(p.name)])
        : -1;
      if (keptAt >= 0) {
        if (keptAt >= at) {
          at = keptAt + 1;
        }
        continue;
      }
      const added = nb.insertCell(at, {
        cell_type: 'code',
        source: p.cell,
        outputs: [],
        execution_count: null,
        metadata: {
          alchemist: {
            task: message.task,
            name: p.name,
            program_id: p.id,
            source_cell: message.cell_id,
            source_hash: textHash(p.cell),
            run: message.run ?? null
          }
        }
      });
      ids.splice(at, 0, added.id);
      at += 1;
    }
  });
  return {
    inserted: fresh.map(p => p.name),
    replaced: stale.length,
    kept: keptNames.filter(n => !elsewhereNames.includes(n)),
    elsewhere: elsewhereNames,
    cells: programCells(nb).filter(c => c.task === message.task)
  };
}

/**
 * The index of the cell holding program `name` of `task`: the cell whose marker line is
 * `%%alchemist_program TASK NAME` (the kernel registers by that line), else a generated cell by its
 * metadata; -1 when there is none.
 */
export function findProgramCell(
  nb: SharedNotebook,
  task: string,
  name: string
): number {
  const marker = `%%alchemist_program ${task} ${name}`;
  const byMarker = nb.cells.findIndex(
    cell => cell.getSource().split('\n', 1)[0].trim() === marker
  );
  if (byMarker >= 0) {
    return byMarker;
  }
  return nb.cells.findIndex((_, i) => {
    const meta = programMetadata(nb, i);
    return meta?.task === task && meta?.name === name;
  });
}
