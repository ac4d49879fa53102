// A bare Express 5 JSON echo endpoint: the ceiling Express itself sets on this machine.
import express from "express";

const app = express();
app.use(express.json({ limit: "1mb" }));
app.post("/echo", (req, res) => {
  res.status(201).json(req.body);
});
const server = app.listen(0, "127.0.0.1", () => {
  const address = server.address() as { port: number };
  console.log(`listening on http://127.0.0.1:${address.port}`);
});
// A clean exit on SIGTERM (how the bench stops it under BENCH_PROFILE), so its CPU profile is written.
process.on("SIGTERM", () => server.close(() => process.exit(0)));
