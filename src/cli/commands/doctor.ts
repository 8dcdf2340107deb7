/** `tapir doctor`: what the engine runs on (libtorch, threads, BLAS, allocator, devices). */
import { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { buildInfo, cudaAvailable, getNumThreads } from '../../engine/index.js';
import { emit, type Io } from '../output.js';

export interface DoctorReport {
  torchVersion: string;
  threads: number;
  blas: string;
  tcmalloc: boolean;
  cuda: boolean;
  warnings: string[];
}

export function doctorReport(): DoctorReport {
  const info = buildInfo();
  const maps = readFileSync('/proc/self/maps', 'utf8');
  const tcmalloc = maps.includes('libtcmalloc');
  const blas = maps.includes('openblas') ? 'openblas' : maps.includes('libblas.so') ? 'reference (netlib)' : 'unknown';
  const warnings: string[] = [];
  if (!tcmalloc)
    warnings.push(
      'tcmalloc is not preloaded: run through bin/tapir (it sets LD_PRELOAD) or memory will grow and ops run 10-35% slower',
    );
  if (blas !== 'openblas')
    warnings.push(
      'BLAS is not OpenBLAS: `apt-get install libopenblas0-openmp` (the reference BLAS is ~30x slower on linear layers)',
    );
  return { torchVersion: info.torchVersion, threads: getNumThreads(), blas, tcmalloc, cuda: cudaAvailable(), warnings };
}

export function doctorCommand(io: Io): Command {
  return new Command('doctor')
    .description('show the engine set-up: libtorch version, threads, BLAS, allocator, CUDA')
    .option('--json', 'print one JSON document')
    .action((o: { json?: boolean }) => {
      const r = doctorReport();
      emit(io, !!o.json, r, () =>
        [
          `libtorch  ${r.torchVersion}`,
          `threads   ${r.threads}`,
          `blas      ${r.blas}`,
          `tcmalloc  ${r.tcmalloc ? 'preloaded' : 'NO'}`,
          `cuda      ${r.cuda ? 'available' : 'not available'}`,
          ...r.warnings.map((w) => `warning: ${w}`),
        ].join('\n'),
      );
    });
}
