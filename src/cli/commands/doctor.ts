/** `tapir doctor`: what the engine runs on (libtorch, threads and how they wait, BLAS, allocator, devices). */
import { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { buildInfo, cudaAvailable, getNumThreads, waitSettings } from '../../engine/index.js';
import { memoryFormat } from '../../graph/index.js';
import { emit, type Io } from '../output.js';

export interface DoctorReport {
  torchVersion: string;
  threads: number;
  /** Where the thread count comes from: TAPIR_THREADS or every core. */
  threadsSource: string;
  /** How idle threads wait (TAPIR_WAIT, or auto from other processes' busy cores at start), and what that sets for OpenMP. */
  wait: { policy: string; source: string; busyCores: number | null; openmp: string };
  /** How conv nets lay activations out (TAPIR_MEMORY_FORMAT, default auto: channels-last when the graph has a conv). */
  memoryFormat: string;
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
  const threadsSource = process.env.TAPIR_THREADS?.trim() ? 'TAPIR_THREADS' : 'every core';
  return {
    torchVersion: info.torchVersion,
    threads: getNumThreads(),
    threadsSource,
    wait: waitSettings(),
    memoryFormat: memoryFormat(),
    blas,
    tcmalloc,
    cuda: cudaAvailable(),
    warnings,
  };
}

function waitReason(w: DoctorReport['wait']): string {
  if (w.source !== 'auto') return w.source;
  return w.busyCores === null ? 'auto: load unknown' : `auto: other processes kept ${w.busyCores} cores busy at start`;
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
          `threads   ${r.threads} (${r.threadsSource}; libtorch and onnxruntime)`,
          `wait      ${r.wait.policy} (${waitReason(r.wait)}; OpenMP: ${r.wait.openmp})`,
          `memory    ${r.memoryFormat}${r.memoryFormat === 'auto' ? ' (channels-last for conv nets)' : ''}`,
          `blas      ${r.blas}`,
          `tcmalloc  ${r.tcmalloc ? 'preloaded' : 'NO'}`,
          `cuda      ${r.cuda ? 'available' : 'not available'}`,
          ...r.warnings.map((w) => `warning: ${w}`),
        ].join('\n'),
      );
    });
}
