// The console's bench: the initial JS size (gzip) and the time to an interactive list of the
// models of a workspace holding 1,000 (tests/test_console.py seeds them and runs this; any
// running console works: node bench/bench.mjs CONFIG.json).
// CONFIG: {console_url, login, dist, runs?}; prints a table and one JSON line.
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';

import { launch, personPage, signIn } from '../e2e/lib.mjs';

const config = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const runs = config.runs ?? 5;

/** Return the gzip size of the JavaScript index.html loads before anything else. */
function initialJsGzip(dist) {
  const html = fs.readFileSync(path.join(dist, 'index.html'), 'utf8');
  const scripts = [...html.matchAll(/<(?:script|link)[^>]+(?:src|href)="\/?([^"]+\.js)"/g)].map((m) => m[1]);
  const bytes = scripts.reduce((sum, file) => sum + zlib.gzipSync(fs.readFileSync(path.join(dist, file)), { level: 9 }).length, 0);
  const raw = scripts.reduce((sum, file) => sum + fs.statSync(path.join(dist, file)).size, 0);
  return { bytes, raw, scripts };
}

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

const browser = await launch();
const page = await personPage(browser, config.console_url);
await signIn(page, config.login);
const rows = () => page.getByRole('rowheader').count();
const firstPage = [];
const all = [];
for (let run = 0; run < runs; run++) {
  // A full load of the console (scripts, config, session, first page of models), as after a
  // person opens it; the list is interactive once its rows and the search box are there.
  const started = Date.now();
  await page.goto('about:blank');
  await page.goto(`${config.console_url}#/models`);
  await page.getByRole('rowheader').nth(99).waitFor();
  await page.getByLabel('Search AI models').waitFor({ state: 'visible' });
  firstPage.push(Date.now() - started);
  // Then every page of the 1,000, following the cursor with "Load more AI models".
  const more = page.getByRole('button', { name: 'Load more AI models' });
  while (await more.count()) {
    const before = await rows();
    await more.click();
    while ((await rows()) === before) await page.waitForTimeout(5);
  }
  all.push(Date.now() - started);
  if ((await rows()) < 1000) throw new Error(`only ${await rows()} models listed`);
}
await browser.close();

const js = initialJsGzip(config.dist);
const result = {
  initial_js_gzip_bytes: js.bytes,
  initial_js_raw_bytes: js.raw,
  first_page_interactive_ms: median(firstPage),
  all_1000_listed_ms: median(all),
  runs,
};
console.log('console bench');
console.log(`  initial JS (gzip)                          ${(js.bytes / 1024).toFixed(1)} KB (${(js.raw / 1024).toFixed(1)} KB raw; target < 250 KB)`);
console.log(`  interactive list, first 100 of 1,000       ${result.first_page_interactive_ms} ms (median of ${runs}; target < 1000 ms)`);
console.log(`  all 1,000 models listed (10 pages)         ${result.all_1000_listed_ms} ms (median of ${runs})`);
console.log(JSON.stringify(result));
