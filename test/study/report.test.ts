import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import sharp from 'sharp';
import { htmlReport, markdownReport, readReport, StudyStore, writeAtomic } from '../../src/study/index.js';
import { packBits } from '../../src/graph/index.js';

const CHROMIUM = '/usr/bin/chromium';
const EVIL = 'evil<script>alert(1)</script>&"x"';

/** A small synthetic study: 2 scores × 2 sparsities, 2 tasks (one with a hostile name), densities, masks, layers. */
function fill(s: StudyStore): void {
  const tasks = ['digits', EVIL];
  s.recordStudy('synthetic', 'p1', { name: 'synthetic', heldout: [EVIL], cap: 10, caps: {} });
  s.writeDense(
    'm@32',
    'p1',
    tasks.map((t, i) => ({
      task: t,
      head: 'dense',
      accuracy: 0.9 - 0.1 * i,
      nTrain: 20,
      nTest: 10,
      classes: ['a<b', 'c&d'],
    })),
    [
      { tensor: 'w1', op: 'conv2d', shape: [4, 2], numel: 8, macs: 80, prunable: true },
      { tensor: 'w2', op: 'linear', shape: [2, 8], numel: 16, macs: 16, prunable: true },
    ],
    {},
  );
  s.writeDense(
    'pixels',
    'p1',
    tasks.map((t) => ({ task: t, head: 'pixels', accuracy: 0.5, nTrain: 20, nTest: 10, classes: ['a<b', 'c&d'] })),
    [],
    {},
  );
  let k = 0;
  for (const score of ['magnitude', 'random'])
    for (const sp of [0.5, 0.75]) {
      const key = `cell${k++}`;
      const results = tasks.flatMap((t) =>
        ['zero-shot', 'finetuned'].flatMap((phase) =>
          ['dense', 'refit'].map((head) => ({
            task: t,
            phase,
            head,
            accuracy: Math.max(0, 0.9 - sp * (score === 'random' ? 0.8 : 0.3) + (phase === 'finetuned' ? 0.05 : 0)),
            nTrain: 20,
            nTest: 10,
          })),
        ),
      );
      const m1 = Array.from({ length: 8 }, (_, i): number => (i < 8 * (1 - sp) ? 1 : 0));
      const m2 = Array.from({ length: 16 }, (_, i): number =>
        (score === 'random' ? 15 - i : i) < 16 * (1 - sp) ? 1 : 0,
      );
      s.writeCell(
        {
          key,
          study: 'synthetic',
          protocol: 'p1',
          model: 'm@32',
          control: 'none',
          score,
          scoreSpec: { name: score },
          sparsity: sp,
          source: 'digits',
          seed: 0,
          achievedSparsity: sp,
          info: {},
          wallS: 1,
        },
        results,
        [
          { tensor: 'w1', numel: 8, kept: m1.reduce((a, b) => a + b) },
          { tensor: 'w2', numel: 16, kept: m2.reduce((a, b) => a + b) },
        ],
        new Map([
          ['w1', packBits(m1)],
          ['w2', packBits(m2)],
        ]),
      );
    }
}

test('report: tables, overlaps and a self-contained HTML file with escaped names', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tapir-report-'));
  try {
    const s = new StudyStore(join(dir, 'r.sqlite'));
    fill(s);
    const d = readReport(s);
    s.close();
    // Same-score masks overlap fully; magnitude vs random at 50%: w1 identical (4 of 4), w2 disjoint halves → 4 / (4 + 16).
    const ov = d.overlaps.find((o) => o.sparsity === 0.5 && o.a === 'magnitude' && o.b === 'random')!;
    assert.equal(ov.iou, 4 / 20);
    assert.ok(d.overlaps.filter((o) => o.a === o.b).every((o) => o.iou === 1));
    const eff = d.efficiency.find((e) => e.score === 'magnitude' && e.sparsity === 0.5)!;
    assert.equal(eff.sparseMacs, 80 * 0.5 + 16 * 0.5);
    const md = markdownReport(d);
    assert.match(md, /\| m@32 \| none \| magnitude \| 50% \|/);
    const { html, plots } = await htmlReport(d);
    assert.equal(plots, 4);
    assert.ok(!html.includes('<script'), 'no script element, and the hostile task name is escaped');
    assert.ok(html.includes('evil&lt;script&gt;alert(1)&lt;/script&gt;&amp;&quot;x&quot;'));
    assert.ok(!/https?:\/\/(?!vega\.github\.io|www\.w3\.org)/.test(html), 'no external resources');
    assert.equal((html.match(/<svg/g) ?? []).length, 4);
    const out = join(dir, 'sub', 'report.html');
    writeAtomic(out, html);
    assert.equal(readFileSync(out, 'utf8'), html);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('report renders its plots in headless Chromium (screenshot and DOM)', async (t) => {
  if (!existsSync(CHROMIUM)) {
    t.skip(`${CHROMIUM} is missing (apt-get install chromium)`);
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'tapir-chromium-'));
  try {
    const s = new StudyStore(join(dir, 'r.sqlite'));
    fill(s);
    const { html } = await htmlReport(readReport(s));
    s.close();
    const file = join(dir, 'report.html');
    writeAtomic(file, html);
    const flags = (profile: string) => [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      `--user-data-dir=${join(dir, profile)}`,
    ];
    const dom = execFileSync(CHROMIUM, [...flags('p1'), '--dump-dom', pathToFileURL(file).href], {
      encoding: 'utf8',
      timeout: 120_000,
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    const svgs = dom.match(/<svg[\s\S]*?<\/svg>/g) ?? [];
    assert.equal(svgs.length, 4, 'four plots in the rendered DOM');
    for (const svg of svgs) {
      const marks = svg.match(/<path[^>]* d="M[^"]+"/g) ?? [];
      assert.ok(marks.length >= 3, `each plot has drawn marks (got ${marks.length} paths)`);
      assert.match(svg, /role-mark/);
    }
    const png = join(dir, 'shot.png');
    execFileSync(
      CHROMIUM,
      [...flags('p2'), `--screenshot=${png}`, '--window-size=1200,2000', pathToFileURL(file).href],
      { timeout: 120_000, stdio: 'ignore' },
    );
    const st = await sharp(png).stats();
    assert.equal((await sharp(png).metadata()).width, 1200);
    // A blank page is one colour; the report has text, lines and the coloured heatmap.
    assert.ok(
      st.channels.slice(0, 3).every((c) => c.stdev > 10),
      `screenshot is not blank (stdev ${st.channels.map((c) => c.stdev.toFixed(1)).join(', ')})`,
    );
    assert.ok(st.channels[2]!.mean !== st.channels[0]!.mean, 'screenshot has colour');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
