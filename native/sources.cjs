// Prints a native source list for binding.gyp, one path per line in native/sources*.txt:
//   node native/sources.cjs cpu|cuda   the common list plus the variant's own list
//   node native/sources.cjs ieee       the merge kernels, compiled without FMA contraction
//                                      (docs/design.md §11: the same bytes on every CPU and the GPU)
const fs = require('fs');
const path = require('path');
const variant = process.argv[2] || 'cpu';
const read = (f) => fs.readFileSync(path.join(__dirname, f), 'utf8').split(/\s+/).filter(Boolean);
const files = variant === 'ieee' ? read('sources-ieee.txt') : [...read('sources.txt'), ...read(`sources-${variant}.txt`)];
process.stdout.write(files.join(' '));
