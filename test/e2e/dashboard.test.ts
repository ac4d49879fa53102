// The dashboard in a real headless Chromium (Debian's, through playwright-core) against a real master.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient, type NewClient } from "../../master/auth/clients.js";
import type { MasterInternals } from "../../master/index.js";
import { HAVE_BROWSER, launchBrowser } from "../helpers/browser.js";
import { http, startTestMaster } from "../helpers/master.js";
import { removeTempDirs } from "../helpers/temp.js";

const SHOTS = join(fileURLToPath(new URL("../..", import.meta.url)), "test-output", "dashboard");

let master: MasterInternals;
let browser: Browser;
let admin: NewClient;
let client: NewClient;
let worker: NewClient;
const outside: string[] = [];

async function token(who: NewClient): Promise<string> {
  const result = await http<{ access_token: string }>(master.url, "POST", "/api/v1/auth/token", { client_id: who.id, client_secret: who.client_secret });
  return result.body.access_token;
}

async function open(viewport = { width: 1280, height: 900 }): Promise<Page> {
  const page = await browser.newPage({ viewport });
  page.on("request", (request) => {
    const url = request.url();
    if (!url.startsWith(master.url) && !url.startsWith("data:")) outside.push(url);
  });
  await page.goto(master.url);
  return page;
}

async function signIn(page: Page, who: NewClient): Promise<void> {
  await page.getByLabel("Client id").fill(who.id);
  await page.getByLabel("Client secret").fill(who.client_secret);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "Overview" }).waitFor();
}

beforeAll(async () => {
  if (!HAVE_BROWSER) return;
  mkdirSync(SHOTS, { recursive: true });
  master = await startTestMaster({ auth: "on" });
  admin = await createClient(master.store, { name: "ops-admin", role: "admin", actor: null });
  client = await createClient(master.store, { name: "billing", role: "client", actor: null });
  worker = await createClient(master.store, { name: "host-1", role: "worker", actor: null });
  browser = await launchBrowser();
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await master?.close();
  removeTempDirs();
});

describe.runIf(HAVE_BROWSER)("dashboard", () => {
  it("serves the page with a policy that forbids other hosts", async () => {
    const response = await fetch(`${master.url}/`);
    expect(response.status).toBe(200);
    expect(response.headers.get("content-security-policy")).toMatch(/default-src 'self'/);
    const html = await response.text();
    expect(html).not.toMatch(/https?:\/\//);
  });

  it("signs in, shows a submitted job appear, opens it and cancels it", async () => {
    // Some history for the chart: a worker finishes two jobs and fails one.
    const asWorker = { authorization: `Bearer ${await token(worker)}` };
    const node = await http<{ id: string }>(master.url, "POST", "/api/v1/nodes", { name: "chart-node", labels: ["chart"], capacity: 5 }, asWorker);
    await http(master.url, "POST", "/api/v1/jobs/batch", { jobs: [1, 2, 3].map((n) => ({ type: "encode", requires: ["chart"], max_retries: 0, payload: { n } })) }, {
      authorization: `Bearer ${await token(client)}`,
    });
    const claimed = await http<{ items: { id: string; attempt: number }[] }>(master.url, "POST", `/api/v1/nodes/${node.body.id}/claim`, { max: 3 }, asWorker);
    await http(master.url, "POST", `/api/v1/nodes/${node.body.id}/results`, {
      results: claimed.body.items.map((job, i) => ({
        job_id: job.id,
        attempt: job.attempt,
        ...(i < 2 ? { status: "completed" } : { status: "failed", error: { message: "bad frame" }, log_tail: "decoding frame 3\nbad frame at byte 812\n" }),
      })),
    }, asWorker);
    const page = await open();
    await signIn(page, admin);
    await page.getByText("2 completed").waitFor();
    // The chart has a scale: its top (a round number over the peak of 3 a minute), half, 0.
    expect(await page.locator(".chart .scale span").allTextContents()).toEqual(["5/min", "2.5", "0"]);
    await page.screenshot({ path: join(SHOTS, "overview.png"), fullPage: true });
    await page.getByRole("link", { name: "Jobs", exact: true }).click();
    await page.getByRole("heading", { name: "Jobs" }).waitFor();
    // Submitted while the page is open: it appears by itself.
    const job = await http<{ id: string }>(master.url, "POST", "/api/v1/jobs", { type: "render", payload: { frame: 7 }, requires: ["gpu"], tags: { film: "demo" } }, {
      authorization: `Bearer ${await token(client)}`,
    });
    const link = page.getByRole("link", { name: job.body.id.slice(-8) });
    await link.waitFor({ timeout: 10_000 });
    // Each row says its node by name and its tags.
    expect(await page.locator(`tr[data-job="${job.body.id}"]`).textContent()).toContain("film=demo");
    await page.locator(`tr[data-job="${claimed.body.items[0]?.id ?? ""}"] a`, { hasText: "chart-node" }).waitFor();
    await link.click();
    await page.getByRole("heading", { name: "render job" }).waitFor();
    expect(await page.locator('pre[aria-label="Payload"]').textContent()).toContain('"frame": 7');
    await page.getByText("job.submitted", { exact: true }).waitFor();
    // No node has its gpu label: the page says so.
    await page.locator('li[data-reason="no_eligible_node"]', { hasText: "no online node has all of its labels: gpu" }).waitFor();
    await page.screenshot({ path: join(SHOTS, "job.png"), fullPage: true });
    await page.getByRole("button", { name: "Cancel job" }).click();
    await page.locator(".facts .status-canceled").waitFor();
    await page.getByText("job.canceled", { exact: true }).waitFor();
    expect(await page.getByRole("button", { name: "Retry job" }).isVisible()).toBe(true);
    // The failed job's page: its attempt, on which node, how it ended, and the end of its output.
    const failed = claimed.body.items[2];
    if (!failed) throw new Error("three jobs were claimed");
    await page.goto(`${master.url}/#/jobs/${failed.id}`);
    await page.getByRole("heading", { name: "Attempts" }).waitFor();
    const attempt = page.locator('li[data-attempt="1"]');
    await attempt.getByText("chart-node").waitFor();
    expect(await attempt.locator(".status-failed").textContent()).toBe("failed");
    expect(await page.locator('pre[aria-label="Output of attempt 1"]').textContent()).toBe("decoding frame 3\nbad frame at byte 812\n");
    await page.screenshot({ path: join(SHOTS, "job-attempts.png"), fullPage: true });
    // A completed job: its history in words with the node's name, dates that read the same
    // everywhere, and no empty actions box (there is nothing to do to it).
    const completed = claimed.body.items[0];
    if (!completed) throw new Error("three jobs were claimed");
    await page.goto(`${master.url}/#/jobs/${completed.id}`);
    await page.getByText("Completed on chart-node (attempt 1)").waitFor();
    await page.getByText("Handed to chart-node (attempt 1)").waitFor();
    expect(await page.locator("section.job-actions").count()).toBe(0);
    expect(await page.locator(".timeline time").first().textContent()).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \S+$/);
    await page.close();
  });

  it("shows a node go from online to draining", async () => {
    await http(master.url, "POST", "/api/v1/nodes", { name: "gpu-box-1", labels: ["gpu"], capacity: 2 }, { authorization: `Bearer ${await token(worker)}` });
    const page = await open();
    await signIn(page, admin);
    await page.getByRole("link", { name: "Nodes" }).click();
    const row = page.locator('tr[data-node="gpu-box-1"]');
    await row.locator(".status-online").waitFor();
    await page.getByRole("button", { name: "Drain gpu-box-1" }).click();
    await row.locator(".status-draining").waitFor();
    await page.getByRole("button", { name: "Resume gpu-box-1" }).waitFor();
    await page.close();
  });

  it("offers a client no admin pages, filters jobs, and works by keyboard", async () => {
    const auth = { authorization: `Bearer ${await token(client)}` };
    const mine = await http<{ id: string }>(master.url, "POST", "/api/v1/jobs", { type: "thumbnail", requires: ["nowhere"] }, auth);
    await http(master.url, "POST", `/api/v1/jobs/${mine.body.id}/cancel`, undefined, auth);
    await http(master.url, "POST", "/api/v1/jobs", { type: "thumbnail", requires: ["nowhere"] }, auth);
    const page = await open();
    await signIn(page, client);
    expect(await page.getByRole("link", { name: "Nodes" }).count()).toBe(0);
    expect(await page.getByRole("link", { name: "Audit log" }).count()).toBe(0);
    await page.goto(`${master.url}/#/jobs`);
    await page.getByLabel("Status").selectOption("canceled");
    await page.getByLabel("Type").focus();
    await page.keyboard.type("thumbnail");
    await page.keyboard.press("Enter");
    await page.waitForFunction("window.location.hash.includes('status=canceled')");
    await page.locator(`tr[data-job="${mine.body.id}"]`).waitFor();
    expect(await page.locator("tbody tr").count()).toBe(1);
    await page.close();
  });

  it("asks for nothing it would be refused before anyone signs in", async () => {
    const page = await browser.newPage();
    const refused: string[] = [];
    page.on("response", (response) => {
      if (response.status() === 401) refused.push(response.url());
    });
    await page.goto(master.url);
    await page.getByRole("button", { name: "Sign in" }).waitFor();
    expect(refused).toEqual([]);
    await page.close();
  });

  it("is readable on a phone-sized screen", async () => {
    const page = await open({ width: 390, height: 844 });
    await signIn(page, admin);
    const overflow = (await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")) as number;
    expect(overflow).toBeLessThanOrEqual(0);
    await page.screenshot({ path: join(SHOTS, "overview-phone.png"), fullPage: true });
    // The jobs table fits too: what identifies a job and where it runs, the rest on its page.
    await page.getByRole("link", { name: "Jobs", exact: true }).click();
    await page.getByRole("heading", { name: "Jobs" }).waitFor();
    await page.locator("tbody tr").first().waitFor();
    const table = (await page.evaluate("(() => { const wrap = document.querySelector('.table-wrap'); return wrap.scrollWidth - wrap.clientWidth; })()")) as number;
    expect(table).toBeLessThanOrEqual(0);
    expect((await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")) as number).toBeLessThanOrEqual(0);
    await page.screenshot({ path: join(SHOTS, "jobs-phone.png"), fullPage: true });
    await page.close();
  });

  it("signs out, and goes back to sign-in when the token is revoked", async () => {
    const page = await open();
    await signIn(page, admin);
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByRole("button", { name: "Sign in" }).waitFor();
    expect(await page.evaluate("sessionStorage.getItem('gaffer.token')")).toBeNull();
    await signIn(page, admin);
    const mine = await http<{ items: { id: string; revoked_at: string | null }[] }>(master.url, "GET", `/api/v1/tokens?client_id=${admin.id}`, undefined, {
      authorization: `Bearer ${await token(admin)}`,
    });
    const adminToken = await token(admin);
    for (const issued of mine.body.items.filter((t) => t.revoked_at === null)) {
      await http(master.url, "DELETE", `/api/v1/tokens/${issued.id}`, undefined, { authorization: `Bearer ${adminToken}` });
    }
    await page.getByText("Your session ended").waitFor({ timeout: 10_000 });
    await page.getByLabel("Client id").waitFor();
    await page.close();
  });

  it("says so when the master cannot be reached", async () => {
    const own = await startTestMaster({ auth: "off" });
    const page = await browser.newPage();
    await page.goto(own.url);
    await page.getByRole("heading", { name: "Overview" }).waitFor();
    await own.close();
    await page.locator(".banner", { hasText: "Cannot reach the master" }).waitFor({ timeout: 10_000 });
    await page.close();
  });

  it("loaded nothing from any other host", () => {
    expect(outside).toEqual([]);
  });
});
