/**
 * Which held-out tasks a study's calibration data used (unlabelled train images, never test images), so a reader
 * knows which held-out numbers are "unseen" only in the sense that their labels and test images were never used.
 * Single-task calibration data are left out of the held-out means altogether (results-findings' `calibrationTasks`);
 * `all` and `mix:` are reported here instead.
 */
import { parseCalibData } from '../prune/index.js';
import type { ReportData } from './report-data.js';
import { taskName, type Finding } from './results-findings.js';

export function calibrationNote(d: ReportData): Finding | null {
  const held = new Set(d.acc.filter((a) => a.heldout).map((a) => a.task));
  const studyTasks = [...new Set(d.acc.map((a) => a.task))];
  const uses = new Map<string, string[]>();
  for (const c of d.cells.filter((x) => x.control === 'none')) {
    const v = c.calibData;
    if (!v || uses.has(v)) continue;
    const tasks =
      v === 'all' ? studyTasks : v.startsWith('mix:') ? (parseCalibData(v) as { tasks: string[] }).tasks : [];
    const seen = tasks.filter((t) => held.has(t));
    if (seen.length) uses.set(v, seen);
  }
  if (uses.size === 0) return null;
  const unseen = (v: string) => [...held].filter((t) => !uses.get(v)!.includes(t));
  return {
    id: 'calibration-data',
    title: 'Held-out tasks whose unlabelled train images were calibration data',
    table: null,
    sentences: [...uses].map(
      ([v, seen]) =>
        `Cells with calib_data ${v === 'all' ? 'all' : taskName(v)} pruned on the unlabelled train images of ${seen.map(taskName).join(', ')}` +
        ` (no label, no test image); ${unseen(v).length ? `${unseen(v).map(taskName).join(', ')} stayed unseen` : 'no held-out task stayed unseen'}.`,
    ),
  };
}
