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

/** The `kind: "cells"` comm message of alchemist_magics/ui/comm.py. */
export interface ICellsMessage {
  cell_id: string;
  task: string;
  programs: IProgram[];
}

/** What a program cell carries in `metadata.alchemist`. */
export interface IProgramCellMetadata {
  task: string;
  name: string;
  program_id: string;
  source_cell: string;
  source_hash: string;
}

/** What one insertion did; sent back to the kernel as the ack. */
export interface IInsertResult {
  inserted: string[];
  replaced: number;
  kept: string[];
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
  const keptNames = kept.map(i => programMetadata(nb, i)!.name);
  const fresh = message.programs.filter(p => !keptNames.includes(p.name));
  nb.transact(() => {
    for (const i of stale.reverse()) {
      nb.deleteCell(i);
    }
    const at = nb.cells.findIndex(c => c.id === message.cell_id) + 1;
    nb.insertCells(
      at,
      fresh.map(p => ({
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
            source_hash: textHash(p.cell)
          }
        }
      }))
    );
  });
  return {
    inserted: fresh.map(p => p.name),
    replaced: stale.length,
    kept: keptNames
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
