// Prints the native source list for binding.gyp: the common list plus the
// variant's own list ("cpu" or "cuda"), one path per line in native/sources*.txt.
const fs = require('fs');
const path = require('path');
const variant = process.argv[2] || 'cpu';
const read = (f) => fs.readFileSync(path.join(__dirname, f), 'utf8').split(/\s+/).filter(Boolean);
process.stdout.write([...read('sources.txt'), ...read(`sources-${variant}.txt`)].join(' '));
