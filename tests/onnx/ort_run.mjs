// ONNX Runtime side of tests/onnx/test_onnx.py: runs an .onnx file on raw
// little-endian float32 inputs and writes the first output the same way.
//
//   node tests/onnx/ort_run.mjs MODEL.onnx BENCH_DIR IN.f32 B,C,H,W OUT.f32 [IN SHAPE OUT ...]
//
// BENCH_DIR is where `npm ci` installed onnxruntime-node (bench/, by
// tools/install-deps.sh --bench). One session serves every input. Prints the
// runtime's version and the output shapes as one JSON line.
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

const [model, benchDir, ...runs] = process.argv.slice(2);
if (!model || !benchDir || runs.length === 0 || runs.length % 3 !== 0) {
  console.error('usage: node ort_run.mjs MODEL BENCH_DIR IN SHAPE OUT [IN SHAPE OUT ...]');
  process.exit(2);
}
const require = createRequire(path.join(path.resolve(benchDir), 'package.json'));
const ort = require('onnxruntime-node');
const version = require('onnxruntime-node/package.json').version;

const session = await ort.InferenceSession.create(model, {
  executionProviders: ['cpu'], intraOpNumThreads: 1, interOpNumThreads: 1, graphOptimizationLevel: 'all',
});
const shapes = [];
for (let i = 0; i < runs.length; i += 3) {
  const b = readFileSync(runs[i]);
  const data = new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
  const shape = runs[i + 1].split(',').map(Number);
  const out = await session.run({ [session.inputNames[0]]: new ort.Tensor('float32', data, shape) });
  const y = out[session.outputNames[0]];
  writeFileSync(runs[i + 2], Buffer.from(y.data.buffer, y.data.byteOffset, y.data.byteLength));
  shapes.push(y.dims);
}
console.log(JSON.stringify({ onnxruntime: version, inputs: session.inputNames, outputs: session.outputNames, shapes }));
