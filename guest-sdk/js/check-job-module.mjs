// Checks a JavaScript job module before componentize-qjs builds it: the host calls the module's
// `job` export (`export const job = defineJob({...})`), so a module without it, for example one
// with `export default defineJob(...)`, would build and then trap on its first call with
// nothing but "unreachable". Usage: node check-job-module.mjs job.js (exit 1 with a message).
import { readFileSync } from "node:fs";

const path = process.argv[2];
if (!path) {
  console.error("usage: node check-job-module.mjs JOB.js");
  process.exit(2);
}
// Comments out, so a commented-out export neither counts nor misleads.
const code = readFileSync(path, "utf8")
  .replace(/\/\*[\s\S]*?\*\//g, "")
  .replace(/(^|[^:"'`\\])\/\/.*$/gm, "$1");
const exportsJob =
  /\bexport\s+(const|let|var)\s+job\b/.test(code) ||
  /\bexport\s+function\s+job\b/.test(code) ||
  /\bexport\s*\{[^}]*\b(job|\w+\s+as\s+job)\s*(,[^}]*)?\}/.test(code);
if (exportsJob) process.exit(0);
const hint = "export the job by name: `export const job = defineJob({ ... });`";
if (/\bexport\s+default\b/.test(code)) {
  console.error(`${path}: the job is exported with \`export default\`, but the host calls the export named \`job\`; ${hint}`);
} else {
  console.error(`${path}: no export named \`job\`; ${hint}`);
}
process.exit(1);
