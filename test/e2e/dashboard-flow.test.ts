// The dashboard's flow control in a real headless Chromium against a real master: the
// Types page, "retry / cancel all matching" on the jobs list, and pages that refresh
// themselves while shown and stop while hidden.
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient, type NewClient } from "../../master/auth/clients.js";
import type { MasterInternals } from "../../master/index.js";
import { HAVE_BROWSER, launchBrowser } from "../helpers/browser.js";
import { http, startTestMaster } from "../helpers/master.js";
import { removeTempDirs } from "../helpers/temp.js";


let master: MasterInternals;
let browser: Browser;
let admin: NewClient;
let client: NewClient;

async function as(who: NewClient): Promise<Record<string, string>> {
  const result = await http<{ access_token: string }>(master.url, "POST", "/api/v1/auth/token", { client_id: who.id, client_secret: who.client_secret });
  return { authorization: `Bearer ${result.body.access_token}` };
}

/** A page signed in as `who`; with `fakeClock`, its timers run only when the test says. */
async function signedInPage(who: NewClient, options: { fakeClock?: boolean } = {}): Promise<Page> {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  if (options.fakeClock) await page.clock.install();
  await page.goto(master.url);
  await page.getByLabel("Client id").fill(who.id);
  await page.getByLabel("Client secret").fill(who.client_secret);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "Overview" }).waitFor();
  return page;
}

/** Tell the page its tab was hidden or shown again, as the browser does. */
async function setHidden(page: Page, hidden: boolean): Promise<void> {
  // A string, evaluated in the page: this file is type-checked without the DOM's types.
  await page.evaluate(`(() => {
    Object.defineProperty(document, "hidden", { configurable: true, get: () => ${hidden} });
    Object.defineProperty(document, "visibilityState", { configurable: true, get: () => "${hidden ? "hidden" : "visible"}" });
    document.dispatchEvent(new Event("visibilitychange"));
  })()`);
}

beforeAll(async () => {
  if (!HAVE_BROWSER) return;
  master = await startTestMaster({ auth: "on" });
  admin = await createClient(master.store, { name: "flow-admin", role: "admin", actor: null });
  client = await createClient(master.store, { name: "flow-client", role: "client", actor: null });
  browser = await launchBrowser();
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await master?.close();
  removeTempDirs();
});

describe.runIf(HAVE_BROWSER)("dashboard: flow control", () => {
  it("shows everyone the types' counts, and lets an admin limit, pause and resume a type", async () => {
    const auth = await as(client);
    await http(master.url, "POST", "/api/v1/jobs/batch", { jobs: [{ type: "resize" }, { type: "resize" }, { type: "upload" }] }, auth);

    const clientPage = await signedInPage(client);
    await clientPage.getByRole("link", { name: "Types" }).click();
    const resizeRow = clientPage.locator('tr[data-type="resize"]');
    await resizeRow.waitFor();
    expect(await resizeRow.locator("td.num").first().textContent()).toBe("2");
    expect(await clientPage.getByRole("button", { name: "Pause resize" }).count()).toBe(0);
    expect(await clientPage.getByRole("button", { name: "Set limit" }).count()).toBe(0);
    await clientPage.close();

    const page = await signedInPage(admin);
    await page.getByRole("link", { name: "Types" }).click();
    const row = page.locator('tr[data-type="resize"]');
    await row.locator(".status-active").waitFor();
    await page.getByRole("button", { name: "Pause resize" }).click();
    await row.locator(".status-paused").waitFor();
    await page.getByRole("button", { name: "Resume resize" }).waitFor();
    await page.getByLabel("Most running jobs of resize").fill("3");
    await row.getByRole("button", { name: "Set limit" }).click();
    const limited = async () => {
      const types = await http<{ items: { type: string; max_running: number | null; paused: boolean }[] }>(master.url, "GET", "/api/v1/types", undefined, auth);
      return types.body.items.find((type) => type.type === "resize");
    };
    await expect.poll(limited).toMatchObject({ max_running: 3, paused: true });
    // The page shows the stored limit once it has read it again (the field is made anew then,
    // which would wipe what is typed before): load it afresh and wait for the 3.
    await page.reload();
    await row.locator(".status-paused").waitFor();
    await expect.poll(() => page.getByLabel("Most running jobs of resize").inputValue()).toBe("3");
    await page.getByLabel("Most running jobs of resize").fill("lots");
    await row.getByRole("button", { name: "Set limit" }).click();
    await row.getByText("a whole number, or empty for none").waitFor();
    await page.getByLabel("Most running jobs of resize").fill("");
    await row.getByRole("button", { name: "Set limit" }).click();
    await page.getByRole("button", { name: "Resume resize" }).click();
    await row.locator(".status-active").waitFor();
    await expect.poll(limited).toMatchObject({ max_running: null, paused: false });
    await page.close();
  });

  it("cancels and retries all the jobs the list's filter matches, after a confirmation that shows the count", async () => {
    const auth = await as(client);
    await http(master.url, "POST", "/api/v1/jobs/batch", { jobs: [1, 2, 3].map((n) => ({ type: "bulk-ui", payload: { n } })) }, auth);
    const other = await http<{ id: string }>(master.url, "POST", "/api/v1/jobs", { type: "bulk-ui-other" }, auth);
    const page = await signedInPage(client);
    await page.goto(`${master.url}/#/jobs`);
    await page.getByRole("heading", { name: "Jobs" }).waitFor();
    // No filter: nothing to act on.
    expect(await page.getByRole("button", { name: "Cancel all matching" }).isDisabled()).toBe(true);
    await page.goto(`${master.url}/#/jobs?type=bulk-ui`);
    await page.locator("tbody tr").nth(2).waitFor();
    await page.getByRole("button", { name: "Cancel all matching" }).click();
    const dialog = page.getByRole("dialog");
    await dialog.getByText("3 job(s) match this filter").waitFor();
    await dialog.getByText("3 would be canceled").waitFor();
    // Nothing happened yet.
    const statuses = async (type: string) =>
      (await http<{ items: { status: string }[] }>(master.url, "GET", `/api/v1/jobs?type=${type}`, undefined, auth)).body.items.map((job) => job.status);
    expect(await statuses("bulk-ui")).toEqual(["pending", "pending", "pending"]);
    await dialog.getByRole("button", { name: "Cancel 3 job(s)" }).click();
    await page.getByText("3 job(s) canceled of 3 matching").waitFor();
    await page.locator("tbody .status-canceled").nth(2).waitFor();
    expect(await statuses("bulk-ui")).toEqual(["canceled", "canceled", "canceled"]);
    expect(await statuses("bulk-ui-other")).toEqual(["pending"]);

    await page.getByRole("button", { name: "Retry all matching" }).click();
    await page.getByRole("dialog").getByText("3 would be retried").waitFor();
    await page.getByRole("dialog").getByRole("button", { name: "Retry 3 job(s)" }).click();
    await page.getByText("3 job(s) retried of 3 matching").waitFor();
    expect(await statuses("bulk-ui")).toEqual(["pending", "pending", "pending"]);

    // Backing out changes nothing.
    await page.getByRole("button", { name: "Cancel all matching" }).click();
    await page.getByRole("dialog").getByRole("button", { name: "Do nothing" }).click();
    expect(await page.getByRole("dialog").count()).toBe(0);
    expect(await statuses("bulk-ui")).toEqual(["pending", "pending", "pending"]);
    await http(master.url, "POST", `/api/v1/jobs/${other.body.id}/cancel`, undefined, auth);
    await page.close();
  });

  it("refreshes the overview and the jobs list by themselves, without a reload, and not while hidden", async () => {
    const auth = await as(client);
    const page = await signedInPage(admin, { fakeClock: true });
    const polls: string[] = [];
    page.on("request", (request) => {
      const path = new URL(request.url()).pathname;
      if (path === "/api/v1/queue/stats" || path === "/api/v1/jobs") polls.push(path);
    });
    await page.evaluate("window.__sameDocument = true");
    const pending = page.locator(".count-pending dd").first();
    await expect.poll(() => pending.textContent()).not.toBe("–");
    const before = Number(await pending.textContent());
    await http(master.url, "POST", "/api/v1/jobs", { type: "poll-me" }, auth);
    await page.clock.runFor(5_500);
    await expect.poll(async () => Number(await pending.textContent())).toBe(before + 1);
    expect(polls.filter((path) => path === "/api/v1/queue/stats").length).toBeGreaterThanOrEqual(1);
    expect(await page.evaluate("window.__sameDocument")).toBe(true);

    // Hidden: no more requests, however long.
    await setHidden(page, true);
    await page.clock.runFor(1_000);
    const hiddenAt = polls.length;
    await page.clock.runFor(30_000);
    expect(polls.length).toBe(hiddenAt);
    // Shown again: at once, and on from there.
    await setHidden(page, false);
    await expect.poll(() => polls.length).toBeGreaterThan(hiddenAt);

    // The jobs list: a job submitted while it is open appears by itself.
    await page.getByRole("link", { name: "Jobs", exact: true }).click();
    await page.getByRole("heading", { name: "Jobs" }).waitFor();
    // The list's first page is in (the job submitted above is on it) before the next job is submitted.
    await page.locator("tr[data-job]").first().waitFor();
    const job = await http<{ id: string }>(master.url, "POST", "/api/v1/jobs", { type: "poll-me-too" }, auth);
    const row = page.locator(`tr[data-job="${job.body.id}"]`);
    expect(await row.count()).toBe(0);
    await page.clock.runFor(5_500);
    await row.waitFor();
    expect(await page.evaluate("window.__sameDocument")).toBe(true);
    await page.close();
  });
});
