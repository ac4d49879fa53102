// Debian's chromium for the dashboard's browser tests (playwright-core drives it): whether it
// is here (a loud skip if not, a failure under GAFFER_REQUIRE_TOOLS) and how it is started.
import { chromium, type Browser } from "playwright-core";
import { haveTool } from "./tools.js";

export const CHROMIUM = process.env.GAFFER_CHROMIUM ?? "/usr/bin/chromium";

export const HAVE_BROWSER = haveTool(CHROMIUM, "the dashboard's browser tests", "install Debian's chromium (apt-get install chromium) or set GAFFER_CHROMIUM");

/** A headless chromium that reaches nothing but the pages it is sent to. */
export function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
}
