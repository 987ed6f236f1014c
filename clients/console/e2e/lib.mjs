// Helpers the console's browser tests and its bench share: Debian's Chromium through
// playwright-core, signing in at the OpenID provider as a person does, and screenshots.
import fs from 'node:fs';
import path from 'node:path';

import { chromium } from 'playwright-core';

export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Return a launched Chromium (Debian's, or $CHROMIUM). */
export function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: CHROMIUM_ARGS,
  });
}

/** Return a fresh browser context (one person) with a page of the console open. */
export async function personPage(browser, consoleUrl) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const page = await context.newPage();
  // Generous: a CI machine with both cores busy answers a search in seconds, not milliseconds.
  page.setDefaultTimeout(30000);
  await page.goto(consoleUrl);
  return page;
}

/**
 * Sign in through the organisation's OpenID provider (authorization code with PKCE): click the
 * console's button, sign in and consent on the provider's pages, come back signed in.
 * Returns the authorization request's query (to check PKCE).
 */
export async function signIn(page, login) {
  let authorize = null;
  const seen = (request) => {
    if (request.url().includes('/auth?')) authorize ??= new URL(request.url()).searchParams;
  };
  page.on('request', seen);
  await page.getByRole('button', { name: 'Sign in with your organisation' }).click();
  await page.locator('input[name="login"]').fill(login);
  await page.locator('input[name="password"]').fill('anything');
  await page.locator('button[type="submit"]').click();
  // The provider's consent page, the first time this person uses the console.
  const consent = page.getByRole('button', { name: 'Continue' });
  await Promise.race([
    consent.waitFor({ state: 'visible' }).then(() => consent.click()),
    page.getByRole('heading', { name: 'AI models', level: 1 }).waitFor(),
  ]);
  await page.getByRole('heading', { name: 'AI models', level: 1 }).waitFor();
  page.off('request', seen);
  return authorize;
}

/** Save a PNG of the page as a person sees it. */
export async function screenshot(page, dir, name, { fullPage = false, height = null } = {}) {
  if (!dir) return;
  fs.mkdirSync(dir, { recursive: true });
  // A dialog is fixed to the viewport: a taller one shows all of it.
  const before = page.viewportSize();
  if (height) await page.setViewportSize({ width: before.width, height });
  await page.screenshot({ path: path.join(dir, `${name}.png`), fullPage });
  if (height) await page.setViewportSize(before);
}

/** Run named checks in order; print one JSON line per check; return whether all passed. */
export async function runChecks(checks) {
  let ok = true;
  for (const [name, check] of checks) {
    const started = Date.now();
    try {
      await check();
      console.log(JSON.stringify({ check: name, ok: true, ms: Date.now() - started }));
    } catch (error) {
      ok = false;
      console.log(
        JSON.stringify({ check: name, ok: false, ms: Date.now() - started, error: String(error?.stack ?? error) }),
      );
    }
  }
  return ok;
}

export function expect(condition, message) {
  if (!condition) throw new Error(message);
}

/**
 * On an AI model's page, open its Deploy section and deploy its version 1 (the Version choice's
 * option at `versionIndex`) to the device `device`; wait for the notice that it was asked of that
 * one device, and return the device's row in the deployments table.
 */
export async function deployToDevice(page, versionIndex, device) {
  await page.getByRole('navigation', { name: 'AI model sections' }).getByRole('link', { name: 'Deploy' }).click();
  await page.getByRole('heading', { name: 'Deploy', exact: true, level: 2 }).waitFor();
  await page.getByLabel('Version', { exact: true }).selectOption({ index: versionIndex });
  await page.getByRole('checkbox', { name: new RegExp(`^${device}`) }).check();
  await page.getByRole('button', { name: 'Deploy', exact: true }).click();
  await page.getByRole('status').filter({ hasText: `Version 1 asked of 1 device: ${device}` }).waitFor();
  return page.getByRole('row').filter({ has: page.getByRole('rowheader', { name: device }) });
}

/**
 * On the gateway's API keys section, create a key `name` for the gateway model `group` and
 * return it, as the dialog shows it once (then closed).
 */
export async function createApiKey(page, name, group) {
  await page.getByRole('button', { name: 'Create an API key' }).click();
  const create = page.getByRole('dialog', { name: 'Create an API key' });
  await create.getByLabel('Name', { exact: true }).fill(name);
  await create.getByRole('checkbox', { name: group }).check();
  await create.getByRole('button', { name: 'Create the API key' }).click();
  const shown = page.getByRole('dialog', { name: 'Your new API key' });
  const secret = (await shown.getByLabel('The new API key').innerText()).trim();
  await shown.getByRole('button', { name: 'Done, I have copied it' }).click();
  return secret;
}
