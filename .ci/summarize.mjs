// Sums vitest's JSON reports of one or more suite runs into "N passed, N failed".
// Usage: node .ci/summarize.mjs <dir> [<dir> …]; each dir holds one report per package.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

let passed = 0;
let failed = 0;
for (const dir of process.argv.slice(2)) {
  let runPassed = 0;
  let runFailed = 0;
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.json'))) {
    const report = JSON.parse(readFileSync(join(dir, file), 'utf8'));
    runPassed += report.numPassedTests;
    // A file that failed to load has no failed tests, yet it is a failure all the same.
    const loadErrors = report.testResults.filter(
      (r) => r.status === 'failed' && !r.assertionResults.some((a) => a.status === 'failed'),
    ).length;
    runFailed += report.numFailedTests + loadErrors;
    if (report.numPendingTests || report.numTodoTests) {
      console.error(
        `${dir}/${file}: ${report.numPendingTests} skipped, ${report.numTodoTests} todo`,
      );
    }
  }
  console.error(`${dir}: ${runPassed} passed, ${runFailed} failed`);
  passed += runPassed;
  failed += runFailed;
}
console.log(`${passed} passed, ${failed} failed`);
