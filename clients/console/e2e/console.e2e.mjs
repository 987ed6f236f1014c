// The console's browser tests against the real services (tests/test_console.py starts them,
// seeds a few things, serves the console and runs this). Usage: node console.e2e.mjs CONFIG.json
// CONFIG: {console_url, screenshots, seeded: {linked_model, system, archived_model, bulk_prefix,
//          bulk_count, reinforcement_count}}
// Each check prints one JSON line; the exit code is 0 only if every check passed.
import fs from 'node:fs';

import { expect, launch, personPage, runChecks, screenshot, signIn } from './lib.mjs';

const config = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const { console_url: url, screenshots: shots, seeded } = config;
const browser = await launch();
const people = {};

const heading = (page, name) => page.getByRole('heading', { name, level: 1 });
const rowCount = (page) => page.getByRole('rowheader').count();

async function openModel(page, name, tab) {
  // A fresh list (no filters left from before): the console is opened anew in this tab.
  await page.goto(`${url}#/models`);
  await page.reload();
  await page.getByLabel('Search AI models').fill(name);
  await page.getByRole('link', { name, exact: true }).click();
  await heading(page, name).waitFor();
  if (tab) await page.getByRole('navigation', { name: 'AI model sections' }).getByRole('link', { name: tab }).click();
}

async function untilRows(page, predicate, what) {
  for (let i = 0; i < 100; i++) {
    if (predicate(await rowCount(page))) return;
    await page.waitForTimeout(100);
  }
  throw new Error(`the list never showed ${what} (rows: ${await rowCount(page)})`);
}

const ok = await runChecks([
  [
    'no dev sign-in outside dev mode',
    async () => {
      const page = await personPage(browser, url);
      await heading(page, 'Sign in to Modelyard').waitFor();
      await page.getByRole('button', { name: 'Sign in with your organisation' }).waitFor();
      expect((await page.getByLabel('Development token').count()) === 0, 'a development sign-in is offered');
      expect((await page.getByText('Development sign-in').count()) === 0, 'a development sign-in is offered');
      await screenshot(page, shots, 'sign-in');
      people.alice = page;
    },
  ],
  [
    'dev sign-in offered when the services run in dev mode',
    async () => {
      const page = await personPage(browser, config.dev_console_url);
      await page.getByRole('heading', { name: 'Development sign-in' }).waitFor();
      await page.getByLabel('Development token').fill('not a token');
      await page.getByRole('button', { name: 'Sign in with the development token' }).click();
      await page.getByRole('alert').filter({ hasText: 'This is not a token' }).waitFor();
      await page.context().close();
    },
  ],
  [
    'sign-in with the OpenID provider (authorization code + PKCE)',
    async () => {
      const page = people.alice;
      const authorize = await signIn(page, 'alice');
      expect(authorize?.get('response_type') === 'code', `response_type: ${authorize?.get('response_type')}`);
      expect(authorize?.get('code_challenge_method') === 'S256', 'no S256 code challenge');
      expect((authorize?.get('code_challenge') ?? '').length >= 43, 'no code challenge');
      await page.getByText('alice', { exact: false }).first().waitFor();
      // An editor is offered Create.
      await page.getByRole('button', { name: 'Create an AI model' }).waitFor();
    },
  ],
  [
    'workspace switcher',
    async () => {
      const page = people.alice;
      const switcher = page.getByLabel('Workspace');
      expect((await switcher.inputValue()) === 'acme', `workspace ${await switcher.inputValue()}`);
      await switcher.selectOption('lab');
      await page.getByText('No AI models in this workspace yet.').waitFor();
      await screenshot(page, shots, 'models-empty');
      await switcher.selectOption('acme');
      await page.getByRole('link', { name: `${seeded.bulk_prefix}000`, exact: true }).waitFor();
    },
  ],
  [
    'a viewer sees no Create button',
    async () => {
      const page = await personPage(browser, url);
      await signIn(page, 'victor');
      await page.getByRole('link', { name: `${seeded.bulk_prefix}000`, exact: true }).waitFor();
      expect((await page.getByRole('button', { name: 'Create an AI model' }).count()) === 0, 'Create offered to a viewer');
      await openModel(page, seeded.linked_model, 'Approval');
      await page.getByText('Review requested by').waitFor();
      expect((await page.getByRole('button', { name: 'Request review' }).count()) === 0, 'Request review offered to a viewer');
      await page.context().close();
    },
  ],
  [
    'list: search, filters and cursor paging',
    async () => {
      const page = people.alice;
      await page.goto(`${url}#/models`);
      await untilRows(page, (n) => n === 100, '100 models on the first page');
      await screenshot(page, shots, 'models-list');
      await page.getByRole('button', { name: 'Load more AI models' }).click();
      await untilRows(page, (n) => n > 100, 'the next page');
      const total = await rowCount(page);
      expect(total === seeded.total_models, `rows after paging: ${total}, want ${seeded.total_models}`);
      expect((await page.getByRole('button', { name: 'Load more AI models' }).count()) === 0, 'more to load after the last page');
      // Search
      await page.getByLabel('Search AI models').fill(`${seeded.bulk_prefix}042`);
      await untilRows(page, (n) => n === 1, 'one search result');
      await page.getByRole('link', { name: `${seeded.bulk_prefix}042` }).waitFor();
      await page.getByLabel('Search AI models').fill('');
      // Learning type
      await page.getByLabel('Learning type').selectOption({ label: 'Reinforcement learning' });
      await untilRows(page, (n) => n === seeded.reinforcement_count, `${seeded.reinforcement_count} reinforcement models`);
      await page.getByLabel('Learning type').selectOption({ label: 'Any' });
      // Tag
      await page.getByLabel('Tag', { exact: true }).fill('payments');
      await untilRows(page, (n) => n === 1, 'one model tagged payments');
      await page.getByRole('link', { name: seeded.linked_model, exact: true }).waitFor();
      await page.getByLabel('Tag', { exact: true }).fill('');
      // Archived
      await page.getByRole('switch', { name: 'Archived only' }).check();
      await untilRows(page, (n) => n === 1, 'the archived model only');
      await page.getByRole('link', { name: seeded.archived_model, exact: true }).waitFor();
      await page.getByRole('switch', { name: 'Archived only' }).uncheck();
      // Approval (the seeded models are drafts)
      await page.getByLabel('Approval').selectOption({ label: 'Approved' });
      await page.getByText('No AI models match these filters.').waitFor();
      await page.getByRole('button', { name: 'Clear the filters' }).click();
      await untilRows(page, (n) => n === 100, 'the first page again');
    },
  ],
  [
    'offline: said so, and the list comes back with Try again',
    async () => {
      const page = people.alice;
      await page.goto(`${url}#/models`);
      await untilRows(page, (n) => n === 100, 'the first page');
      await page.context().setOffline(true);
      await page.getByRole('status').filter({ hasText: 'You are offline' }).waitFor();
      await page.getByLabel('Search AI models').fill(`${seeded.bulk_prefix}01`);
      await page.getByRole('alert').filter({ hasText: 'cannot be reached' }).waitFor();
      await screenshot(page, shots, 'models-offline');
      await page.context().setOffline(false);
      await page.getByRole('button', { name: 'Try again' }).click();
      await untilRows(page, (n) => n === 10, `the ten ${seeded.bulk_prefix}01x models`);
      await page.getByLabel('Search AI models').fill('');
    },
  ],
  [
    'Create an AI model: learning types with definitions, field error next to its field',
    async () => {
      const page = people.alice;
      await page.goto(`${url}#/models`);
      await page.getByRole('button', { name: 'Create an AI model' }).click();
      const dialog = page.getByRole('dialog', { name: 'Create an AI model' });
      await dialog.waitFor();
      for (const label of ['Supervised learning', 'Unsupervised learning', 'Semi-supervised learning', 'Reinforcement learning']) {
        const radio = dialog.getByRole('radio', { name: label, exact: true });
        await radio.waitFor();
        const definition = await radio.evaluate((el) => document.getElementById(el.getAttribute('aria-describedby')).textContent);
        expect(definition.length > 40, `no definition next to ${label}`);
      }
      // A name of spaces only: the registry refuses it, naming the field.
      await dialog.getByLabel('Name', { exact: true }).fill('   ');
      await dialog.getByRole('radio', { name: 'Supervised learning', exact: true }).check();
      await dialog.getByRole('button', { name: 'Create', exact: true }).click();
      const name = dialog.getByRole('textbox', { name: 'Name' });
      await page.waitForFunction(() => document.querySelector('dialog [aria-invalid="true"]'));
      expect((await name.getAttribute('aria-invalid')) === 'true', 'Name not marked invalid');
      const described = await name.evaluate((el) =>
        el.getAttribute('aria-describedby').split(' ').map((id) => document.getElementById(id).textContent).join(' '),
      );
      expect(described.trim().length > 0 && /char|empty|blank|white|pattern|match|name/i.test(described), `no error under Name: ${described}`);
      // Focus moves in the next animation frame: a busy machine may not have drawn it yet.
      await page.waitForFunction(() => document.activeElement?.getAttribute('aria-invalid') === 'true', null, { timeout: 5000 }).catch(() => {});
      expect(await name.evaluate((el) => el === document.activeElement), 'focus not moved to the invalid field');
      await screenshot(page, shots, 'create-model-error', { height: 1500 });
      // Now a good one, with every field and a markdown description with preview.
      await name.fill('churn-predictor');
      await dialog.getByLabel('Functionality').fill('churn prediction');
      await dialog.getByLabel('Foundations').fill('gradient boosted trees');
      await dialog.getByLabel('Provider').fill('in-house');
      await dialog.getByLabel('Tags').fill('Retention, CRM');
      await dialog.getByRole('textbox', { name: 'Description' }).fill('## Known limits\n\n- trained on 2025 data only');
      await dialog.getByRole('button', { name: 'Add a property' }).click();
      await dialog.getByLabel('Property name', { exact: true }).fill('accuracy');
      await dialog.getByLabel('Type', { exact: true }).selectOption('number');
      await dialog.getByLabel('Value', { exact: true }).fill('0.91');
      await dialog.getByRole('tab', { name: 'Preview' }).click();
      await dialog.getByRole('heading', { name: 'Known limits' }).waitFor();
      await screenshot(page, shots, 'create-model', { height: 1500 });
      await dialog.getByRole('button', { name: 'Create', exact: true }).click();
      await heading(page, 'churn-predictor').waitFor();
      await page.getByText('churn prediction').waitFor();
      await page.getByText('retention, crm').waitFor();
      await page.getByRole('heading', { name: 'Known limits' }).waitFor();
      await page.getByText('0.91').waitFor();
    },
  ],
  [
    'AI system with its AI Models section: a description of use for each model',
    async () => {
      const page = people.alice;
      await page.goto(`${url}#/systems`);
      await page.getByRole('button', { name: 'Create an AI system' }).click();
      await heading(page, 'Create an AI system').waitFor();
      await page.getByLabel('Name').fill('retention-desk');
      await page.getByLabel('Purpose').fill('Helps the retention team call customers at risk.');
      await page.getByRole('radio', { name: /^limited/ }).check();
      await page.getByLabel('AI Act role').selectOption('deployer');
      await page.getByLabel('Risk justification').fill('Art. 50: staff and customers are told AI is involved.');
      await page.getByLabel('Find AI models').fill('churn');
      await page.getByRole('checkbox', { name: 'churn-predictor' }).check();
      await page.getByLabel('Description of use for churn-predictor').fill('ranks customers by churn risk each morning');
      await screenshot(page, shots, 'system-form', { fullPage: true });
      await page.getByRole('button', { name: 'Create the AI system' }).click();
      await heading(page, 'AI systems').waitFor();
      await page.getByRole('link', { name: 'retention-desk' }).waitFor();
      // Edit: the system's facts and the description of use (PATCH with the ETags read).
      await page.getByRole('link', { name: 'retention-desk' }).click();
      await heading(page, 'retention-desk').waitFor();
      expect((await page.getByLabel('AI Act role').inputValue()) === 'deployer', 'AI Act role not shown');
      await page.getByLabel('Owner').fill('retention team');
      await page.getByLabel('Description of use for churn-predictor').fill('ranks customers by churn risk each morning, for the call list');
      await page.getByRole('button', { name: 'Save the AI system' }).click();
      await heading(page, 'AI systems').waitFor();
      await page.getByRole('cell', { name: 'Helps the retention team call customers at risk.' }).waitFor();
      await openModel(page, 'churn-predictor');
      await page.getByRole('cell', { name: 'ranks customers by churn risk each morning, for the call list' }).waitFor();
      await page.getByRole('link', { name: 'retention-desk' }).waitFor();
      await screenshot(page, shots, 'model-overview', { fullPage: true });
    },
  ],
  [
    'approval by two people: alice asks, bob decides',
    async () => {
      const alice = people.alice;
      await openModel(alice, seeded.linked_model, 'Approval');
      await alice.getByRole('button', { name: 'Request review' }).click();
      await alice.getByLabel('Comment').fill('model card attached');
      await alice.getByRole('button', { name: 'Request review: confirm' }).click();
      await alice.getByText('In review').first().waitFor();
      expect((await alice.getByRole('button', { name: 'Approve' }).count()) === 0, 'the requester is offered Approve');
      const bob = await personPage(browser, url);
      await signIn(bob, 'bob');
      await openModel(bob, seeded.linked_model, 'Approval');
      await bob.getByText('model card attached').waitFor();
      await bob.getByRole('button', { name: 'Approve' }).click();
      await bob.getByLabel('Comment').fill('limited risk, fine');
      await bob.getByRole('button', { name: 'Approve: confirm' }).click();
      await bob.getByText('limited risk, fine').waitFor();
      const facts = bob.locator('dl.approval');
      const text = await facts.innerText();
      expect(/Approved/.test(text) && /alice/.test(text) && /bob/.test(text), `approval facts: ${text}`);
      await screenshot(bob, shots, 'model-approval');
      // Alice sees the decision and who made it; the list filter finds it as approved.
      await alice.reload();
      await alice.getByText('limited risk, fine').waitFor();
      await alice.goto(`${url}#/models`);
      await alice.getByLabel('Approval').selectOption({ label: 'Approved' });
      await untilRows(alice, (n) => n === 1, 'one approved model');
      await alice.getByLabel('Approval').selectOption({ label: 'Any' });
      await bob.context().close();
    },
  ],
  [
    'a stale save is shown as changed by someone else (412)',
    async () => {
      const first = people.alice;
      await openModel(first, 'churn-predictor', 'Settings');
      // The same person duplicates the tab (the session goes with it) and saves there first.
      const [second] = await Promise.all([
        first.context().waitForEvent('page'),
        first.evaluate(() => window.open(window.location.href)),
      ]);
      await second.getByRole('heading', { name: 'Settings' }).waitFor();
      await second.getByLabel('Name').fill('churn-predictor-v2');
      await second.getByRole('button', { name: 'Save changes' }).click();
      await second.getByText('Saved.').waitFor();
      await second.close();
      await first.getByLabel('Tags').fill('retention, crm, monthly');
      await first.getByRole('button', { name: 'Save changes' }).click();
      await first.getByRole('alert').filter({ hasText: 'changed by someone else' }).waitFor();
      await first.getByRole('button', { name: 'Reload' }).waitFor();
      await screenshot(first, shots, 'model-settings-412', { fullPage: true });
      await first.getByRole('button', { name: 'Reload' }).click();
      await heading(first, 'churn-predictor-v2').waitFor();
    },
  ],
  [
    'field-level history',
    async () => {
      const page = people.alice;
      await page.getByRole('navigation', { name: 'AI model sections' }).getByRole('link', { name: 'History' }).click();
      await page.getByRole('heading', { name: 'History' }).waitFor();
      const row = page.getByRole('row').filter({ hasText: 'churn-predictor-v2' });
      await row.first().waitFor();
      const text = await row.first().innerText();
      expect(/name/.test(text) && /churn-predictor\b/.test(text.replace('churn-predictor-v2', '')), `history row: ${text}`);
      await screenshot(page, shots, 'model-history', { fullPage: true });
    },
  ],
  [
    'Model instances: an admin creates a local and a cloud one; the token never comes back',
    async () => {
      const page = await personPage(browser, url);
      await signIn(page, 'root');
      // Every answer of the gateway this person's browser receives, to look for the secret in.
      const bodies = [];
      page.on('response', async (response) => {
        if (response.url().startsWith(config.gateway_url)) bodies.push(await response.text().catch(() => ''));
      });
      await page.getByRole('link', { name: 'Gateway' }).click();
      await heading(page, 'Models').waitFor();
      await page.getByRole('navigation', { name: 'Gateway sections' }).getByRole('link', { name: 'Model instances' }).click();
      await page.getByText('No model instances yet.').waitFor();
      // Local: host, port, protocol; a host the gateway refuses is said under the field.
      await page.getByRole('button', { name: 'Create a model instance' }).click();
      const dialog = page.getByRole('dialog', { name: 'Create a model instance' });
      await dialog.getByLabel('Name', { exact: true }).fill(seeded.local_instance);
      await dialog.getByLabel('Host', { exact: true }).fill('not a host!');
      await dialog.getByLabel('Port', { exact: true }).fill(String(seeded.local_port));
      await dialog.getByLabel('Upstream model', { exact: true }).fill('llama-3.1-8b');
      await dialog.getByRole('button', { name: 'Create the model instance' }).click();
      const host = dialog.getByLabel('Host', { exact: true });
      await page.waitForFunction(() => document.activeElement?.getAttribute('aria-invalid') === 'true');
      expect((await host.getAttribute('aria-invalid')) === 'true', 'the refused host is not marked');
      await host.fill('127.0.0.1');
      await dialog.getByRole('button', { name: 'Create the model instance' }).click();
      await page.getByRole('rowheader', { name: seeded.local_instance }).waitFor();
      // Cloud: URL, token (write-only) and proxy.
      await page.getByRole('button', { name: 'Create a model instance' }).click();
      await dialog.getByLabel('Name', { exact: true }).fill(seeded.cloud_instance);
      await dialog.getByLabel(/^Cloud/).check();
      await dialog.getByLabel('Base URL', { exact: true }).fill(seeded.cloud_url);
      await dialog.getByLabel('Token', { exact: true }).fill(seeded.cloud_token);
      await dialog.getByLabel('Upstream model', { exact: true }).fill('gpt-4o-mini');
      await screenshot(page, shots, 'gateway-create-instance', { height: 1100 });
      await dialog.getByRole('button', { name: 'Create the model instance' }).click();
      const cloud = page.getByRole('row').filter({ has: page.getByRole('rowheader', { name: seeded.cloud_instance }) });
      await cloud.getByText('stored: token').waitFor();
      // Check now: the local one answers (a model server on loopback).
      await page.getByRole('button', { name: `Check ${seeded.local_instance} now` }).click();
      await page.getByRole('status').filter({ hasText: 'answered in' }).waitFor();
      await screenshot(page, shots, 'gateway-instances');
      await page.reload();
      await cloud.getByText('stored: token').waitFor();
      const leaked = bodies.filter((body) => body.includes(seeded.cloud_token)).length;
      expect(bodies.length >= 4, `only ${bodies.length} gateway answers seen`);
      expect(leaked === 0, `${leaked} gateway answers carried the token`);
      expect(!(await page.content()).includes(seeded.cloud_token), 'the page shows the token');
      await page.context().close();
    },
  ],
  [
    'Models: an editor makes a model of two instances in failover order',
    async () => {
      const page = people.alice;
      await page.goto(`${url}#/gateway/instances`);
      await page.getByRole('rowheader', { name: seeded.cloud_instance }).waitFor();
      expect((await page.getByRole('button', { name: 'Create a model instance' }).count()) === 0, 'an editor is offered Create a model instance');
      expect((await page.getByRole('button', { name: /^Check .* now$/ }).count()) === 0, 'an editor is offered Check now');
      await page.getByRole('navigation', { name: 'Gateway sections' }).getByRole('link', { name: 'Models' }).click();
      await page.getByRole('button', { name: 'Create a model' }).click();
      const dialog = page.getByRole('dialog', { name: 'Create a model' });
      await dialog.getByLabel('Name', { exact: true }).fill(seeded.group);
      // Chosen cloud first, then local; then the local one moved up: local first.
      await dialog.getByLabel(seeded.cloud_instance).check();
      await dialog.getByLabel(seeded.local_instance).check();
      await dialog.getByRole('button', { name: `Move ${seeded.local_instance} up` }).click();
      const order = await dialog.getByRole('list', { name: 'Failover order' }).innerText();
      expect(order.indexOf(seeded.local_instance) < order.indexOf(seeded.cloud_instance), `order: ${order}`);
      await screenshot(page, shots, 'gateway-create-model', { height: 1000 });
      await dialog.getByRole('button', { name: 'Create the model' }).click();
      const row = page.getByRole('row').filter({ has: page.getByRole('rowheader', { name: seeded.group }) });
      await row.waitFor();
      const text = await row.innerText();
      expect(text.indexOf(seeded.local_instance) < text.indexOf(seeded.cloud_instance), `row: ${text}`);
      await screenshot(page, shots, 'gateway-models');
    },
  ],
  [
    'API keys: created and shown once, limits edited (a stale edit is refused), revoked; the workspace limits',
    async () => {
      // An editor (not admin, not operator) reads the keys and changes nothing.
      const alice = people.alice;
      await alice.goto(`${url}#/gateway/keys`);
      await heading(alice, 'API keys').waitFor();
      await alice.getByText('No API keys yet').waitFor();
      expect((await alice.getByRole('button', { name: 'Create an API key' }).count()) === 0, 'Create an API key offered to an editor');
      expect((await alice.getByRole('button', { name: 'Change the workspace limits' }).count()) === 0, 'workspace limits offered to an editor');

      const page = await personPage(browser, url);
      await page.context().grantPermissions(['clipboard-read', 'clipboard-write'], { origin: url });
      await signIn(page, 'root');
      await page.getByRole('link', { name: 'Gateway' }).click();
      await page.getByRole('navigation', { name: 'Gateway sections' }).getByRole('link', { name: 'API keys' }).click();
      await heading(page, 'API keys').waitFor();
      // The workspace's ceiling (admins).
      await page.getByRole('button', { name: 'Change the workspace limits' }).click();
      await page.getByLabel('Requests per minute').fill('600');
      await page.getByRole('button', { name: 'Save the workspace limits' }).click();
      await page.getByRole('status').filter({ hasText: 'Workspace limits saved.' }).waitFor();
      await page.getByLabel('Workspace limits now').filter({ hasText: '600 requests/min' }).waitFor();
      // Create: the key is shown once, with Copy.
      await page.getByRole('button', { name: 'Create an API key' }).click();
      const create = page.getByRole('dialog', { name: 'Create an API key' });
      await create.getByLabel('Name', { exact: true }).fill('support-bot');
      await create.getByRole('checkbox', { name: seeded.group }).check();
      await create.getByLabel('Requests per minute').fill('60');
      await create.getByLabel('Tokens per day').fill('100000');
      await create.getByLabel('Expires').fill('2030-01-01T12:00');
      await screenshot(page, shots, 'gateway-create-key', { height: 1100 });
      await create.getByRole('button', { name: 'Create the API key' }).click();
      const shown = page.getByRole('dialog', { name: 'Your new API key' });
      await shown.getByText('it is shown only this once').waitFor();
      const secret = (await shown.getByLabel('The new API key').innerText()).trim();
      expect(/^sk-/.test(secret), `the key shown: ${secret}`);
      await shown.getByRole('button', { name: 'Copy' }).click();
      await shown.getByRole('status').filter({ hasText: 'Copied to the clipboard.' }).waitFor();
      expect((await page.evaluate(() => navigator.clipboard.readText())) === secret, 'the clipboard does not hold the key');
      await screenshot(page, shots, 'gateway-key-created', { height: 900 });
      await shown.getByRole('button', { name: 'Done, I have copied it' }).click();
      const row = page.getByRole('row').filter({ has: page.getByRole('rowheader', { name: 'support-bot' }) });
      await row.getByText('60 requests/min, 100,000 tokens/day').waitFor();
      const text = await row.innerText();
      expect(text.includes(seeded.group) && /2030/.test(text) && /active/.test(text), `key row: ${text}`);
      expect(!(await page.content()).includes(secret), 'the key is still on the page');
      // The key works at the gateway's OpenAI API, for its model.
      const models = await fetch(`${config.gateway_url}/v1/models`, { headers: { Authorization: `Bearer ${secret}` } });
      expect(models.status === 200, `the new key answered ${models.status}`);
      // Edit in a duplicated tab first; then the stale edit here is refused (412) and reloads.
      const [second] = await Promise.all([
        page.context().waitForEvent('page'),
        page.evaluate(() => window.open(window.location.href)),
      ]);
      await second.getByRole('button', { name: 'Edit support-bot' }).click();
      const secondEdit = second.getByRole('dialog', { name: 'Limits and expiry of support-bot' });
      await secondEdit.getByLabel('Requests per minute').fill('120');
      await secondEdit.getByRole('button', { name: 'Save the limits' }).click();
      await second.getByRole('row').filter({ hasText: '120 requests/min' }).waitFor();
      await second.close();
      await page.getByRole('button', { name: 'Edit support-bot' }).click();
      const edit = page.getByRole('dialog', { name: 'Limits and expiry of support-bot' });
      await edit.getByLabel('Tokens per day').fill('200000');
      await edit.getByRole('button', { name: 'Save the limits' }).click();
      await edit.getByRole('alert').filter({ hasText: 'changed by someone else' }).waitFor();
      await screenshot(page, shots, 'gateway-key-412', { height: 1000 });
      await edit.getByRole('button', { name: 'Reload' }).click();
      await row.getByText('120 requests/min, 100,000 tokens/day').waitFor();
      await page.getByRole('button', { name: 'Edit support-bot' }).click();
      await edit.getByLabel('Tokens per day').fill('200000');
      await edit.getByRole('button', { name: 'Save the limits' }).click();
      await row.getByText('120 requests/min, 200,000 tokens/day').waitFor();
      // Traffic for the request log: a chat the model's instances both fail (the model server
      // answers no POST, nothing listens for the cloud one: 5xx), then 55 chats with a model
      // that does not exist (4xx; more than a page of the log).
      const bearer = { Authorization: `Bearer ${secret}`, 'Content-Type': 'application/json' };
      const chat = (model) =>
        fetch(`${config.gateway_url}/v1/chat/completions`, {
          method: 'POST',
          headers: bearer,
          body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hello' }] }),
        });
      const failed = await chat(seeded.group);
      expect(failed.status >= 500, `the chat answered ${failed.status}`);
      for (let i = 0; i < 55; i++) {
        const unknown = await chat('no-such-model');
        expect(unknown.status >= 400 && unknown.status < 500, `an unknown model answered ${unknown.status}`);
      }
      // Revoke, asked twice; the key stops working.
      await page.getByRole('button', { name: 'Revoke support-bot' }).click();
      await page.getByRole('button', { name: 'Yes, revoke support-bot' }).click();
      await row.getByText(/^revoked/).waitFor();
      expect((await row.getByRole('button', { name: 'Edit support-bot' }).count()) === 0, 'Edit offered on a revoked key');
      await screenshot(page, shots, 'gateway-keys', { fullPage: true });
      let status = 0;
      for (let i = 0; i < 50 && status !== 401; i++) {
        status = (await fetch(`${config.gateway_url}/v1/models`, { headers: { Authorization: `Bearer ${secret}` } })).status;
        if (status !== 401) await page.waitForTimeout(200);
      }
      expect(status === 401, `the revoked key answered ${status}`);
      await page.context().close();
    },
  ],
  [
    'Request log: filters, cursor paging and Export CSV',
    async () => {
      const page = people.alice;
      await page.goto(`${url}#/gateway/requests`);
      await heading(page, 'Request log').waitFor();
      const rows = page.locator('table.requests tbody tr');
      // The gateway writes its log about every second: ask again until the first page is full.
      for (let i = 0; i < 60 && (await rows.count()) < 50; i++) {
        await page.waitForTimeout(500);
        await page.getByRole('button', { name: 'Refresh' }).click();
        await page.waitForTimeout(300);
      }
      expect((await rows.count()) === 50, `first page: ${await rows.count()} rows`);
      await screenshot(page, shots, 'gateway-request-log');
      await page.getByRole('button', { name: 'Load more requests' }).click();
      await page.getByRole('status').filter({ hasText: /^(5[1-9]|[6-9]\d) requests shown/ }).waitFor();
      // Status class: only the failed chat.
      const statuses = async () => (await page.locator('table.requests tbody tr td:nth-child(4) .badge').allInnerTexts()).map(Number);
      await page.getByLabel('Status').selectOption('5xx');
      await page.getByRole('status').filter({ hasText: /^1 request shown/ }).waitFor();
      expect((await statuses()).every((s) => s >= 500), `5xx filter: ${await statuses()}`);
      const failed = await rows.first().innerText();
      expect(failed.includes(seeded.group) && failed.includes(seeded.local_instance) && failed.includes(seeded.cloud_instance), `failed row: ${failed}`);
      await screenshot(page, shots, 'gateway-request-log-5xx');
      // Model and status: the chat model's refused ones (none), then any status.
      await page.getByLabel('Model').selectOption(seeded.group);
      await page.getByLabel('Status').selectOption('4xx');
      await page.getByText('No requests match these filters.').waitFor();
      await page.getByLabel('Status').selectOption('');
      await page.getByRole('status').filter({ hasText: /^1 request shown/ }).waitFor();
      // A time range in the future: none; Clear the filters brings the first page back.
      await page.getByLabel('Model').selectOption('');
      await page.getByLabel('From').fill('2035-01-01T00:00');
      await page.getByText('No requests match these filters.').waitFor();
      await page.getByRole('button', { name: 'Clear the filters' }).click();
      await page.getByRole('status').filter({ hasText: '50 requests shown, more to load' }).waitFor();
      // Export: a CSV of the same requests, with a header line.
      await page.getByLabel('Status').selectOption('4xx');
      for (let i = 0; i < 100 && (await statuses()).some((s) => s < 400 || s >= 500); i++) await page.waitForTimeout(100);
      expect((await statuses()).every((s) => s >= 400 && s < 500), `4xx filter: ${await statuses()}`);
      const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Export CSV' }).click()]);
      const csv = fs.readFileSync(await download.path(), 'utf8').trim().split(/\r?\n/);
      const header = csv[0].split(',');
      expect(header.includes('status') && header.includes('group'), `CSV header: ${csv[0]}`);
      // The 4xx rows' fields hold no quoted commas: a plain split finds their status.
      const odd = csv.slice(1).filter((line) => !/^4\d\d$/.test(line.split(',')[header.indexOf('status')]));
      expect(csv.length >= 56 && odd.length === 0, `CSV: ${csv.length - 1} rows, not 4xx: ${odd.slice(0, 3).join(' | ')}`);
      expect(download.suggestedFilename().endsWith('.csv'), `file: ${download.suggestedFilename()}`);
    },
  ],
  [
    'Upload a version: manifest read in the browser, bad zips refused',
    async () => {
      // A viewer (no grant on the model) sees no Upload.
      const viewer = await personPage(browser, url);
      await signIn(viewer, 'victor');
      await openModel(viewer, seeded.linked_model, 'Version');
      await viewer.getByText('You have no access to this AI model').waitFor();
      expect((await viewer.getByRole('button', { name: 'Upload a version' }).count()) === 0, 'Upload offered to a viewer');
      await viewer.context().close();

      const page = await personPage(browser, url);
      await signIn(page, 'root');
      people.root = page;
      await openModel(page, seeded.linked_model, 'Version');
      await page.getByRole('rowheader', { name: /^v1/ }).waitFor();
      await page.getByRole('button', { name: 'Upload a version' }).click();
      const dialog = page.getByRole('dialog', { name: 'Upload a version' });
      const file = dialog.getByLabel('Project (.zip)');
      const upload = dialog.getByRole('button', { name: 'Upload the version' });
      await file.setInputFiles(seeded.zips.no_manifest);
      await dialog.getByRole('alert').filter({ hasText: 'no run manifest' }).waitFor();
      expect(await upload.isDisabled(), 'Upload offered for a zip without a manifest');
      await file.setInputFiles(seeded.zips.bad_manifest);
      const bad = dialog.getByRole('alert').filter({ hasText: 'not a valid run manifest' });
      await bad.waitFor();
      const said = await bad.innerText();
      expect(/exactly one of image or dockerfile/.test(said) && /port/.test(said), `bad manifest said: ${said}`);
      await screenshot(page, shots, 'version-upload-refused', { height: 1000 });
      expect(await upload.isDisabled(), 'Upload offered for a bad manifest');
      // The good one: its YAML manifest shown before anything is sent.
      await file.setInputFiles(seeded.zips.good);
      const facts = dialog.getByRole('definition');
      await dialog.getByRole('heading', { name: /What will run: modelyard.yaml/ }).waitFor();
      const shown = await dialog.locator('dl.manifest').innerText();
      expect(/modelyard\/python-base:bookworm/.test(shown) && /8080/.test(shown) && /openai/.test(shown) && /128 MB/.test(shown), `manifest shown: ${shown}`);
      expect((await facts.count()) >= 8, 'manifest facts missing');
      await dialog.getByLabel('Title').fill('faster echo');
      await dialog.getByLabel('Comment').fill('uploaded from the console');
      // A slow link, so the progress bar is seen (and photographed) on its way.
      const cdp = await page.context().newCDPSession(page);
      await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 20, downloadThroughput: -1, uploadThroughput: 256 * 1024 });
      await upload.click();
      await dialog.locator('progress').waitFor();
      await screenshot(page, shots, 'version-upload', { height: 1100 });
      await page.getByRole('status').filter({ hasText: 'Version 2 uploaded.' }).waitFor({ timeout: 60000 });
      await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
      const row = page.getByRole('row').filter({ has: page.getByRole('rowheader', { name: /^v2/ }) });
      const text = await row.innerText();
      expect(/faster echo/.test(text) && /root/.test(text) && /port 8080/.test(text), `v2 row: ${text}`);
      await screenshot(page, shots, 'model-versions', { fullPage: true });
    },
  ],
  [
    'Deploy: to chosen devices and by label; actions, history, remove',
    async () => {
      const page = people.root;
      await page.getByRole('navigation', { name: 'AI model sections' }).getByRole('link', { name: 'Deploy' }).click();
      await page.getByRole('heading', { name: 'Deploy', level: 2 }).waitFor();
      // v1 to the chosen device.
      await page.getByLabel('Version', { exact: true }).selectOption({ index: 1 });
      await page.getByRole('checkbox', { name: new RegExp(`^${seeded.second_device}`) }).check();
      await page.getByRole('button', { name: 'Deploy', exact: true }).click();
      await page.getByRole('status').filter({ hasText: `Version 1 asked of 1 device: ${seeded.second_device}` }).waitFor();
      const row = page.getByRole('row').filter({ has: page.getByRole('rowheader', { name: seeded.second_device }) });
      const cell = async (index, want) => {
        for (let i = 0; i < 100; i++) {
          if ((await row.getByRole('cell').nth(index).innerText()).trim() === want) return;
          await page.waitForTimeout(100);
        }
        throw new Error(`cell ${index} never read ${want}: ${await row.innerText()}`);
      };
      await cell(0, 'v1');
      // v2 to every device labelled site=munich (the same device: switched to v2).
      await page.getByRole('radio', { name: 'Every device with a label' }).check();
      await page.getByLabel('Version', { exact: true }).selectOption({ index: 0 });
      await page.getByLabel('Label selector').fill('site=munich');
      await page.getByRole('button', { name: 'Deploy', exact: true }).click();
      await page.getByRole('status').filter({ hasText: `Version 2 asked of 1 device: ${seeded.second_device}` }).waitFor();
      await cell(0, 'v2');
      await page.getByRole('rowheader', { name: seeded.device }).waitFor();
      await screenshot(page, shots, 'model-deploy', { fullPage: true });
      const on = (action) => page.getByRole('button', { name: `${action} on ${seeded.second_device}` });
      await on('Stop').click();
      await cell(2, 'stopped');
      await on('Start').click();
      await cell(2, 'running');
      await on('Restart').click();
      await cell(2, 'running');
      await on('Roll back').click();
      await cell(0, 'v1');
      await on('History').click();
      const history = page.getByRole('dialog', { name: `History of ${seeded.linked_model} on ${seeded.second_device}` });
      for (const action of ['rollback', 'restart', 'start', 'stop']) {
        const entry = history.getByRole('row').filter({ has: page.getByRole('cell', { name: action, exact: true }) });
        expect((await entry.first().innerText()).includes('root'), `${action}: not by root`);
      }
      await screenshot(page, shots, 'deployment-history', { height: 1100 });
      await history.locator('footer').getByRole('button', { name: 'Close' }).click();
      // Remove: asked twice, naming the device.
      await page.getByRole('button', { name: `Remove from ${seeded.second_device}` }).click();
      await page.getByRole('button', { name: 'Keep it' }).click();
      await cell(2, 'running');
      await page.getByRole('button', { name: `Remove from ${seeded.second_device}` }).click();
      await page.getByRole('button', { name: `Yes, remove from ${seeded.second_device}` }).click();
      await cell(2, 'removed');
      expect((await row.getByRole('button').filter({ hasText: /^(Stop|Start|Restart|Roll back|Remove)$/ }).count()) === 0, 'actions offered on a removed deployment');
    },
  ],
  [
    'Device List and Manage models: stop, start and delete a model on a device',
    async () => {
      // A viewer without access to the model sees the device, not the model, and no action.
      const viewer = await personPage(browser, url);
      await signIn(viewer, 'victor');
      await viewer.getByRole('link', { name: 'Devices' }).click();
      await viewer.getByRole('link', { name: seeded.device }).click();
      await heading(viewer, seeded.device).waitFor();
      await viewer.getByText('No models on this device.').waitFor();
      expect((await viewer.getByRole('button').filter({ hasText: /^(Stop|Start|Delete)$/ }).count()) === 0, 'actions offered to a viewer');
      await viewer.context().close();

      const page = await personPage(browser, url);
      await signIn(page, 'root');
      await page.getByRole('link', { name: 'Devices' }).click();
      await heading(page, 'Device List').waitFor();
      await page.getByLabel('Label').fill('site=nowhere');
      await page.getByText('No devices match these filters.').waitFor();
      await page.getByLabel('Label').fill('site=berlin');
      await page.getByRole('link', { name: seeded.device }).waitFor();
      await screenshot(page, shots, 'devices-list');
      await page.getByRole('link', { name: seeded.device }).click();
      await heading(page, seeded.device).waitFor();
      const row = page.getByRole('row').filter({ has: page.getByRole('rowheader', { name: seeded.linked_model }) });
      const asked = async (state) => {
        for (let i = 0; i < 100; i++) {
          if ((await row.getByRole('cell').nth(2).innerText()).trim() === state) return;
          await page.waitForTimeout(100);
        }
        throw new Error(`never asked for ${state}: ${await row.innerText()}`);
      };
      await asked('running');
      await screenshot(page, shots, 'device-manage-models');
      await page.getByRole('button', { name: `Stop ${seeded.linked_model}` }).click();
      await asked('stopped');
      await page.getByRole('button', { name: `Start ${seeded.linked_model}` }).click();
      await asked('running');
      await page.getByRole('button', { name: `Delete ${seeded.linked_model}` }).click();
      await page.getByRole('button', { name: 'Keep it' }).click();
      await asked('running');
      await page.getByRole('button', { name: `Delete ${seeded.linked_model}` }).click();
      await page.getByRole('button', { name: `Yes, delete ${seeded.linked_model} from this device` }).click();
      await asked('removed');
      expect((await row.getByRole('button').count()) === 0, 'actions offered on a removed model');
      await page.context().close();
    },
  ],
  [
    'delete refused while AI systems use the model (409 naming them)',
    async () => {
      const page = await personPage(browser, url);
      await signIn(page, 'root');
      await openModel(page, seeded.linked_model, 'Settings');
      await page.getByRole('button', { name: 'Delete this AI model' }).click();
      await page.getByRole('button', { name: `Yes, delete ${seeded.linked_model}` }).click();
      const alert = page.getByRole('alert').filter({ hasText: 'cannot be deleted' });
      await alert.waitFor();
      const used = alert.getByRole('list', { name: 'AI systems using this model' });
      await used.getByRole('link', { name: seeded.system }).waitFor();
      await screenshot(page, shots, 'model-delete-409', { fullPage: true });
      // Still there.
      await page.goto(`${url}#/models`);
      await page.getByLabel('Search AI models').fill(seeded.linked_model);
      await page.getByRole('link', { name: seeded.linked_model, exact: true }).waitFor();
      await page.context().close();
    },
  ],
]);

await browser.close();
process.exit(ok ? 0 : 1);
