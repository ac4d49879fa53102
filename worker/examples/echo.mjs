#!/usr/bin/env node
// An example command handler (API.md §10): the job arrives as JSON on stdin; the
// last stdout line is the result; `::progress N message` lines report progress;
// exit 65 means "bad input, do not retry"; any other failure is retried.
let input = "";
process.stdin.on("data", (chunk) => (input += chunk));
process.stdin.on("end", () => {
  const job = JSON.parse(input);
  if (job.payload === null || typeof job.payload !== "object") {
    console.error("the payload must be an object");
    process.exit(65);
  }
  console.log("::progress 50 echoing");
  console.log(JSON.stringify({ echo: job.payload, job_id: process.env.GAFFER_JOB_ID }));
});
