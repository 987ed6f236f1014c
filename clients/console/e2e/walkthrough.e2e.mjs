// The README's walkthrough done entirely in the console (tests/test_console_walkthrough.py starts
// the services, a real device agent and the console, then runs this).
// Usage: node walkthrough.e2e.mjs CONFIG.json
// CONFIG: {console_url, screenshots, served_file, seeded: {device, model, system, group, question, zip}}
// Each step prints one JSON line; a step that fails skips the rest (each builds on the one before).
import fs from 'node:fs';

import { createApiKey, deployToDevice, expect, launch, personPage, screenshot, signIn } from './lib.mjs';

const config = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const { console_url: url, screenshots: shots, seeded } = config;
const browser = await launch();
let root;

/** Open the AI model from the list (searched by name), on one of its sections. */
async function modelSection(page, section) {
  await page.goto(`${url}#/models`);
  await page.getByLabel('Search AI models').fill(seeded.model);
  await page.getByRole('link', { name: seeded.model, exact: true }).click();
  await page.getByRole('heading', { name: seeded.model, level: 1 }).waitFor();
  await page.getByRole('navigation', { name: 'AI model sections' }).getByRole('link', { name: section, exact: true }).click();
}

/** Go to a section of the Gateway screen. */
async function gatewaySection(page, section) {
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Gateway' }).click();
  await page.getByRole('navigation', { name: 'Gateway sections' }).getByRole('link', { name: section, exact: true }).click();
}

const steps = [
  [
    'an admin turns the gate to Enforce',
    async () => {
      root = await personPage(browser, url);
      await signIn(root, 'root');
      await gatewaySection(root, 'Workspace policy');
      await root.getByRole('radio', { name: /^Enforce/ }).check();
      await root.getByLabel('Why').fill('nothing unapproved is deployed or served');
      await root.getByRole('button', { name: 'Save the policy' }).click();
      await root.getByRole('status').filter({ hasText: 'The gate is now Enforce' }).waitFor();
    },
  ],
  [
    'the model, the AI system that uses it, and how',
    async () => {
      await root.goto(`${url}#/models`);
      await root.getByRole('button', { name: 'Create an AI model' }).click();
      const dialog = root.getByRole('dialog', { name: 'Create an AI model' });
      await dialog.getByLabel('Name', { exact: true }).fill(seeded.model);
      await dialog.getByRole('radio', { name: 'Supervised learning', exact: true }).check();
      await dialog.getByLabel('Functionality').fill('chat');
      await dialog.getByRole('button', { name: 'Create', exact: true }).click();
      await root.getByRole('heading', { name: seeded.model, level: 1 }).waitFor();

      await root.goto(`${url}#/systems`);
      await root.getByRole('button', { name: 'Create an AI system' }).click();
      await root.getByLabel('Name').fill(seeded.system);
      await root.getByLabel('Purpose').fill('Answers the helpdesk’s first-line questions.');
      await root.getByRole('radio', { name: /^limited/ }).check();
      await root.getByLabel('AI Act role').selectOption('deployer');
      await root.getByLabel('Risk justification').fill('Art. 50: people are told they talk to an AI.');
      await root.getByLabel('Find AI models').fill(seeded.model);
      await root.getByRole('checkbox', { name: seeded.model }).check();
      await root.getByLabel(`Description of use for ${seeded.model}`).fill('answers first-line questions');
      await root.getByRole('button', { name: 'Create the AI system' }).click();
      await root.getByRole('link', { name: seeded.system }).waitFor();
      // The model's overview names the system and the description of use.
      await modelSection(root, 'Overview');
      await root.getByRole('cell', { name: 'answers first-line questions' }).waitFor();
      await root.getByRole('link', { name: seeded.system }).waitFor();
    },
  ],
  [
    'a review by two people: alice asks, bob approves',
    async () => {
      // The walkthrough's "alice" is the workspace admin here (root); bob is an approver.
      await modelSection(root, 'Approval');
      await root.getByRole('button', { name: 'Request review' }).click();
      await root.getByLabel('Comment').fill('model card attached');
      await root.getByRole('button', { name: 'Request review: confirm' }).click();
      await root.getByText('In review').first().waitFor();
      expect((await root.getByRole('button', { name: 'Approve' }).count()) === 0, 'the requester is offered Approve');
      const bob = await personPage(browser, url);
      await signIn(bob, 'bob');
      await modelSection(bob, 'Approval');
      await bob.getByRole('button', { name: 'Approve' }).click();
      await bob.getByLabel('Comment').fill('limited risk');
      await bob.getByRole('button', { name: 'Approve: confirm' }).click();
      await bob.getByText('limited risk', { exact: true }).waitFor();
      await bob.context().close();
    },
  ],
  [
    'the project uploaded, its manifest shown first',
    async () => {
      await modelSection(root, 'Version');
      await root.getByRole('button', { name: 'Upload a version' }).click();
      const dialog = root.getByRole('dialog', { name: 'Upload a version' });
      await dialog.getByLabel('Project (.zip)').setInputFiles(seeded.zip);
      await dialog.getByRole('heading', { name: /What will run: modelyard.yaml/ }).waitFor();
      await dialog.getByLabel('Title').fill('v1');
      await dialog.getByLabel('Comment').fill('first cut');
      await dialog.getByRole('button', { name: 'Upload the version' }).click();
      await root.getByRole('status').filter({ hasText: 'Version 1 uploaded.' }).waitFor({ timeout: 60000 });
    },
  ],
  [
    'deployed to the device, its state watched until running',
    async () => {
      // The row changes by itself as the device reports (no reload): every state seen is noted.
      const row = await deployToDevice(root, 0, seeded.device);
      const seen = [];
      const until = Date.now() + 300000;
      while (Date.now() < until) {
        // The cells after the device: Version, Status, Asked for, Updated, Actions.
        const state = (await row.getByRole('cell').nth(1).innerText()).trim();
        if (seen.at(-1) !== state) seen.push(state);
        if (state === 'running' || state === 'failed') break;
        await root.waitForTimeout(200);
      }
      console.error(`states the browser saw: ${seen.join(' → ')}`);
      expect(seen.at(-1) === 'running', `the deployment never ran: ${seen.join(' → ')}`);
      await screenshot(root, shots, 'walkthrough-deployed', { fullPage: true });
    },
  ],
  [
    'a gateway model that follows the AI model, and an API key',
    async () => {
      await gatewaySection(root, 'Models');
      await root.getByRole('button', { name: 'Create a model' }).click();
      const dialog = root.getByRole('dialog', { name: 'Create a model' });
      await dialog.getByLabel('Name', { exact: true }).fill(seeded.group);
      await dialog.getByLabel('Follow an AI model of the registry').selectOption({ label: seeded.model });
      await dialog.getByRole('button', { name: 'Create the model' }).click();
      await root.getByRole('rowheader', { name: seeded.group }).waitFor();

      await gatewaySection(root, 'API keys');
      root.apiKey = await createApiKey(root, 'helpdesk-ui', seeded.group);
      expect(root.apiKey.length > 20, 'no key shown');
    },
  ],
  [
    'the answer streams in the playground, from the device',
    async () => {
      await gatewaySection(root, 'Playground');
      await root.getByLabel('Model', { exact: true }).selectOption(seeded.group);
      await root.getByLabel('API key').fill(root.apiKey);
      await root.getByLabel('Message').fill(seeded.question);
      const conversation = root.getByRole('region', { name: 'Conversation' });
      const answer = conversation.getByText(`echo: ${seeded.question}`);
      // The gateway takes the running deployment into the group once its health check passes:
      // until then the playground says why there is no answer, and the person asks again.
      const refusals = [];
      for (let attempt = 0; attempt < 60; attempt++) {
        await root.getByRole('button', { name: 'Send' }).click();
        const alert = root.getByRole('alert');
        const outcome = await Promise.race([
          answer.waitFor({ timeout: 60000 }).then(() => 'answered'),
          alert.first().waitFor({ timeout: 60000 }).then(() => 'refused'),
        ]);
        if (outcome === 'answered') break;
        refusals.push((await alert.first().innerText()).slice(0, 120));
        await root.waitForTimeout(2000);
      }
      if (refusals.length) console.error(`asked again after: ${refusals.join(' | ')}`);
      await answer.waitFor({ timeout: 1000 });
      const served = root.getByRole('status').filter({ hasText: /^Served by / });
      const name = (await served.locator('strong').innerText()).trim();
      fs.writeFileSync(config.served_file, name);
      await screenshot(root, shots, 'walkthrough-playground', { fullPage: true });
    },
  ],
];

let ok = true;
for (const [name, step] of steps) {
  const started = Date.now();
  if (!ok) {
    console.log(JSON.stringify({ check: name, ok: false, ms: 0, error: 'skipped: an earlier step failed' }));
    continue;
  }
  try {
    await step();
    console.log(JSON.stringify({ check: name, ok: true, ms: Date.now() - started }));
  } catch (error) {
    ok = false;
    // What the person saw when it failed: the page's text, and a screenshot beside the others.
    const shown = root ? (await root.locator('main').innerText().catch(() => '')).slice(0, 1500) : '';
    if (root) await screenshot(root, shots, 'walkthrough-failed', { fullPage: true }).catch(() => {});
    const said = `${error?.stack ?? error}\nthe page showed: ${shown}`;
    console.log(JSON.stringify({ check: name, ok: false, ms: Date.now() - started, error: said }));
  }
}
await browser.close();
process.exit(ok ? 0 : 1);
