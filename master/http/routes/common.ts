// Pieces the route modules share.
import { problemSchema } from "../problem.js";

/** The problem answers every protected route may give (documented once for /openapi.json). */
export const problemResponses = {
  400: { description: "Invalid request", schema: problemSchema },
  401: { description: "No valid access token", schema: problemSchema },
  403: { description: "The caller's role may not do this", schema: problemSchema },
  404: { description: "Not found (or not yours)", schema: problemSchema },
  409: { description: "Conflict with the current state", schema: problemSchema },
  429: { description: "Rate limited (rate_limited), or a client's quota reached (quota_exceeded)", schema: problemSchema },
  503: { description: "Unavailable (read-only or paused)", schema: problemSchema },
};
