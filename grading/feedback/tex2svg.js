// TeX -> SVG with MathJax 3 (the site's own npm copy, package-lock.json), for feedback pages that
// need no network and no script: `node tex2svg.js <node_modules/mathjax>`, then one JSON request a
// line on stdin ({"tex": "...", "display": true}) and one JSON answer a line on stdout ({"html": ...}
// or {"error": ...}). The first line written is {"css": <MathJax's SVG stylesheet>} once it is ready.
'use strict';
const path = require('path');
const readline = require('readline');

const mathjaxDir = path.resolve(process.argv[2] || 'node_modules/mathjax');
const write = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');

require(mathjaxDir).init({
  loader: {load: ['input/tex-full', 'output/svg', 'adaptors/liteDOM', 'a11y/assistive-mml']},
  // every formula carries the glyphs it uses, so a formula's SVG stands alone in any page
  svg: {fontCache: 'local'},
  startup: {typeset: false},
}).then((MathJax) => {
  const adaptor = MathJax.startup.adaptor;
  write({css: adaptor.textContent(MathJax.svgStylesheet())});
  const rl = readline.createInterface({input: process.stdin, terminal: false});
  rl.on('line', (line) => {
    if (!line.trim()) return;
    try {
      const req = JSON.parse(line);
      const node = MathJax.tex2svg(String(req.tex), {display: !!req.display});
      write({html: adaptor.outerHTML(node)});
    } catch (e) {
      write({error: String(e && e.message || e)});
    }
  });
  rl.on('close', () => process.exit(0));
}).catch((e) => {
  write({error: 'MathJax did not start: ' + String(e && e.message || e)});
  process.exit(1);
});
