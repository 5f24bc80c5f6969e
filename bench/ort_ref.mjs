// ONNX Runtime side of the CPU benchmark: vit-bench's inference workloads on
// the ViT-B/16 that bench/export_onnx.py writes. Same defaults, timing and
// output as examples/vit-bench.c, plus "impl": "onnxruntime" in the JSON.
// Peak RSS is the process's, so run one workload per process.
//
//   node bench/ort_ref.mjs --workload b16-infer-b1 [--model bench/vit_b16.onnx] [--threads 2]
//       [--steps 5] [--warmup 2] [--json] [--check]
//
// --check first runs the batch-1 input of MODEL.ref.json and compares the
// logits to PyTorch's there (exit 1 if the largest difference is over 1e-3).
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import ort from 'onnxruntime-node';

// name: batch; the model is fixed by the .onnx file (224 px, patch 16, dim 768,
// depth 12, 1000 classes), only the batch size varies.
const WORKLOADS = { 'b16-infer-b1': 1, 'b16-infer-b16': 16 };
const TOL = 1e-3;
// export_onnx.py's default output, beside this script.
const DEFAULT_MODEL = fileURLToPath(new URL('vit_b16.onnx', import.meta.url));

function usage(msg) {
  if (msg) console.error(`ort_ref: ${msg}`);
  console.error('usage: node bench/ort_ref.mjs --workload b16-infer-b1|b16-infer-b16 [--model FILE] '
    + '[--threads N] [--steps S] [--warmup W] [--json] [--check]');
  process.exit(2);
}

function parseArgs(argv) {
  const a = { workload: null, model: DEFAULT_MODEL, threads: 2, steps: 5, warmup: 2, json: false, check: false };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    if (k === '--json' || k === '--check') { a[k.slice(2)] = true; continue; }
    if (!['--workload', '--model', '--threads', '--steps', '--warmup'].includes(k)) usage(`unknown argument '${k}'`);
    if (i + 1 >= argv.length) usage(`${k} needs a value`);
    const v = argv[++i];
    if (k === '--workload' || k === '--model') { a[k.slice(2)] = v; continue; }
    const n = Number(v), min = k === '--warmup' ? 0 : 1;
    if (!Number.isInteger(n) || n < min) usage(`${k}: expected an integer >= ${min}, got '${v}'`);
    a[k.slice(2)] = n;
  }
  if (!Object.hasOwn(WORKLOADS, a.workload ?? '')) usage(`--workload: expected one of ${Object.keys(WORKLOADS).join(', ')}`);
  return a;
}

// Forward FLOPs per image, as flops_per_image() in tests/parity/torch_vit.py.
function forwardFlops(img, patch, chans, dim, depth, mlp, classes) {
  const n = (img / patch) ** 2, t = n + 1, hidden = Math.floor(dim * mlp);
  const block = 2 * t * dim * 3 * dim + 2 * 2 * t * t * dim + 2 * t * dim * dim + 2 * 2 * t * dim * hidden;
  return 2 * n * chans * patch * patch * dim + depth * block + 2 * dim * classes;
}

function f32FromB64(s) {
  const b = Buffer.from(s, 'base64');
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

async function check(session, model) {
  const ref = JSON.parse(readFileSync(`${model}.ref.json`, 'utf8'));
  const out = await session.run({ images: new ort.Tensor('float32', f32FromB64(ref.input), ref.input_shape) });
  const got = out.logits.data, want = f32FromB64(ref.logits);
  if (got.length !== want.length) throw new Error(`logits: ${got.length} values, reference has ${want.length}`);
  let max = 0;
  for (let i = 0; i < got.length; i++) max = Math.max(max, Math.abs(got[i] - want[i]));
  console.error(`ort_ref: check: max |ORT - PyTorch| logits difference ${max.toExponential(3)} (tolerance ${TOL})`);
  return max <= TOL;
}

async function main() {
  const a = parseArgs(process.argv.slice(2));
  const batch = WORKLOADS[a.workload];
  const session = await ort.InferenceSession.create(a.model, {
    executionProviders: ['cpu'],
    intraOpNumThreads: a.threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  });
  if (a.check && !(await check(session, a.model))) process.exit(1);

  // Synthetic input in [-0.5, 0.5), like vit-bench's; a fixed LCG keeps it repeatable.
  const x = new Float32Array(batch * 3 * 224 * 224);
  let seed = 1;
  for (let i = 0; i < x.length; i++) {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    x[i] = seed / 2 ** 32 - 0.5;
  }
  const feeds = { images: new ort.Tensor('float32', x, [batch, 3, 224, 224]) };
  const times = [];
  for (let s = 0; s < a.warmup + a.steps; s++) {
    const t0 = performance.now();
    await session.run(feeds);
    if (s >= a.warmup) times.push((performance.now() - t0) / 1e3);
  }
  times.sort((p, q) => p - q);
  const m = times.length >> 1;
  const median = times.length % 2 ? times[m] : 0.5 * (times[m - 1] + times[m]);
  const rss = process.resourceUsage().maxRSS / 1024; // KiB -> MiB
  const ips = batch / median, gflops = forwardFlops(224, 16, 3, 768, 12, 4.0, 1000) * batch / median * 1e-9;
  if (a.json) {
    console.log(JSON.stringify({
      workload: a.workload, threads: a.threads, batch, median_step_s: +median.toFixed(6), img_per_s: +ips.toFixed(3),
      gflops: +gflops.toFixed(2), peak_rss_mib: +rss.toFixed(1), impl: 'onnxruntime', ort_version: ort.env.versions.common,
    }));
  } else {
    console.log(`${a.workload.padEnd(16)} threads ${a.threads} batch ${String(batch).padStart(4)}  `
      + `${(median * 1e3).toFixed(2).padStart(9)} ms/step  ${ips.toFixed(2).padStart(9)} img/s  `
      + `${gflops.toFixed(1).padStart(7)} GFLOP/s  peak RSS ${rss.toFixed(1).padStart(7)} MiB  (onnxruntime)`);
  }
  await session.release();
}

main().catch((e) => { console.error(`ort_ref: ${e.message ?? e}`); process.exit(1); });
