/**
 * The guided walkthrough in headless Chromium on the production build, driven by the keyboard only
 * (Tab, Enter, Escape): once with no LLM endpoint set up (the scripted LLM answers, and the panel
 * says so), once with a loopback OpenAI-protocol server that answers like a perfect model
 * (test/fixtures/planted-llm.ts) set up in the settings. The real app runs underneath: the model
 * in the worker, a real scan of the bundled corpus, the explain job, IndexedDB. Screenshots of
 * every step go to test-results/walkthrough-*.png.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { browserAvailable, launchChromium, showView, startBuiltApp } from './helpers/browser.ts';
import type { StaticServer } from './helpers/static-server.ts';
import { contrastFailures } from './helpers/contrast.ts';
import { logprobTokens, reply, startFakeOpenAiServer, type FakeOpenAiServer } from './helpers/fake-openai-server.ts';
import { plantedNeuronLlm } from './fixtures/planted-llm.ts';
import { plantedNeurons } from '../scripts/toy/planted-model.ts';
import { WALKTHROUGH_STEPS, WALKTHROUGH_TEXT } from '../src/app/walkthrough.ts';

const run = browserAvailable() ? describe : describe.skip;

run('the guided walkthrough', () => {
  let app: StaticServer;
  let browser: Browser;
  let context: BrowserContext;
  let server: FakeOpenAiServer;
  const pageErrors: string[] = [];

  beforeAll(async () => {
    app = await startBuiltApp();
    browser = await launchChromium();
    context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
    const planted = plantedNeuronLlm({ planted: plantedNeurons() });
    server = await startFakeOpenAiServer((body, i, request) =>
      body.messages.length === 1 ? reply.completion('7', { logprobs: logprobTokens('7') }) : planted(body, i, request),
    );
  }, 300_000);

  afterAll(async () => {
    await browser?.close();
    await app?.close();
    await server?.close();
  });

  async function openApp(): Promise<Page> {
    const page = await context.newPage();
    page.on('pageerror', (err) => pageErrors.push(err.message));
    await page.goto(app.url);
    await page.getByTestId('model-status').waitFor({ timeout: 120_000 });
    return page;
  }

  const active = (page: Page) => page.evaluate(() => ({ id: document.activeElement?.id ?? '', testid: document.activeElement?.getAttribute('data-testid') ?? '', text: document.activeElement?.textContent?.trim() ?? '' }));

  /** Presses Tab until `matches` holds for the focused element (at most `limit` times). */
  async function tabTo(page: Page, matches: (a: Awaited<ReturnType<typeof active>>) => boolean, limit = 30): Promise<void> {
    for (let i = 0; i < limit; i++) {
      if (matches(await active(page))) return;
      await page.keyboard.press('Tab');
    }
    throw new Error(`Tab never reached the element; focus is on ${JSON.stringify(await active(page))}`);
  }

  const dialog = (page: Page) => page.getByRole('dialog', { name: /./ });
  const stepTitle = (page: Page) => page.locator('#walkthrough-title');
  const nextReady = (page: Page, timeout: number) =>
    page.waitForFunction(() => document.querySelector('[data-testid="walkthrough-next"]')?.getAttribute('aria-disabled') === 'false', null, { timeout });

  /** Enter on Next (which keeps the focus), then checks the new step's title and the contrast of what is shown. */
  async function nextStep(page: Page, index: number): Promise<void> {
    expect((await active(page)).testid).toBe('walkthrough-next');
    await page.keyboard.press('Enter');
    await expect.poll(() => stepTitle(page).textContent()).toBe(`${index + 1}. ${WALKTHROUGH_STEPS[index].title}`);
    expect(await contrastFailures(page), `step ${index + 1}`).toEqual([]);
  }

  it('runs to its end with no LLM set up: scripted answers, marked as scripted, the planted rule scoring high', async () => {
    const page = await openApp();
    // Open it from the header with the keyboard.
    await tabTo(page, (a) => a.id === 'walkthrough-button');
    await page.keyboard.press('Enter');
    await dialog(page).waitFor();
    await expect.poll(async () => (await active(page)).id).toBe('walkthrough-title');
    expect(await stepTitle(page).textContent()).toBe(`1. ${WALKTHROUGH_STEPS[0].title}`);
    expect(await page.getByTestId('walkthrough-count').textContent()).toBe(`Walkthrough · step 1 of ${WALKTHROUGH_STEPS.length}`);
    expect(await page.locator('#walkthrough-button').getAttribute('aria-expanded')).toBe('true');
    await page.screenshot({ path: 'test-results/walkthrough-1-welcome.png' });

    await tabTo(page, (a) => a.testid === 'walkthrough-next');
    await nextReady(page, 60_000);
    await nextStep(page, 1);
    // The probe view shows the sentence, coloured by neuron 0:37.
    await expect.poll(() => new URL(page.url()).searchParams.get('view')).toBe('probe');
    expect(new URL(page.url()).searchParams.get('neuron')).toBe('0:37');
    expect(await page.locator('#probe-text').inputValue()).toBe(WALKTHROUGH_TEXT);
    await page.getByTestId('token-strip').waitFor();
    await page.screenshot({ path: 'test-results/walkthrough-2-probe.png' });

    await nextStep(page, 2);
    await expect.poll(() => new URL(page.url()).searchParams.get('view')).toBe('datasets');
    expect(await page.getByTestId('walkthrough-next').getAttribute('aria-disabled')).toBe('true');
    await page.screenshot({ path: 'test-results/walkthrough-3-scan-running.png' });
    await nextReady(page, 240_000);
    expect(await page.getByTestId('walkthrough-announcement').textContent()).toBe(`Step 3 of 7: ${WALKTHROUGH_STEPS[2].title}. The scan is done.`);
    expect(await page.getByTestId('walkthrough-status').innerText()).toMatch(/^\s*Done\. Every neuron now has its top-activating excerpts/);
    await page.screenshot({ path: 'test-results/walkthrough-3-scan-done.png' });

    await nextStep(page, 3);
    const url = new URL(page.url());
    expect(url.searchParams.get('view')).toBe('neuron');
    expect(url.searchParams.get('neuron')).toBe('0:37');
    expect(url.searchParams.get('dataset')).toBeTruthy();
    await nextReady(page, 120_000);
    expect(await page.getByTestId('walkthrough-llm').innerText()).toMatch(/Scripted answers\s*No LLM endpoint is set up in Settings/);
    const explanation = page.getByTestId('walkthrough-explanation');
    expect(await explanation.innerText()).toMatch(/Explanation \(scripted\)\s*“numbers: tokens made only of digits”\s*Planted rule/);
    await page.screenshot({ path: 'test-results/walkthrough-4-explain.png' });

    await nextStep(page, 4);
    // Real and simulated values side by side, token by token: high on the number tokens only.
    const rows = await page.getByTestId('walkthrough-example').locator('tbody tr').evaluateAll((trs) =>
      trs.map((tr) => [...tr.children].map((cell) => (cell as HTMLElement).innerText.trim())),
    );
    expect(rows).toHaveLength(9);
    expect(rows.some(([token]) => /^" ?[0-9]+"$/.test(token))).toBe(true);
    for (const [token, real, simulated] of rows) {
      const digits = /^" ?[0-9]+"$/.test(token);
      expect(Number(real) > 5, `real on ${token}`).toBe(digits);
      expect(Number(simulated) > 5, `simulated on ${token}`).toBe(digits);
    }
    expect(await dialog(page).innerText()).toMatch(/Scripted answers\s*No language model was asked: these answers come from the rules planted in the toy model\./);
    await page.screenshot({ path: 'test-results/walkthrough-5-simulate.png' });

    await nextStep(page, 5);
    const scores = await page.getByTestId('walkthrough-scores').locator('tbody tr').allInnerTexts();
    expect(scores[0]).toMatch(/“numbers: tokens made only of digits” \(scripted\)\s+(0\.9\d|1\.00)$/);
    expect(scores[1]).toMatch(/“capitalised words” \(wrong on purpose\)\s+(-?0\.[0-2]\d)$/);
    expect(await dialog(page).innerText()).toMatch(/random only: (undefined \(the neuron never fires on these random excerpts|0\.9\d|1\.00)/);
    await page.screenshot({ path: 'test-results/walkthrough-6-score.png' });

    await nextStep(page, 6);
    await page.screenshot({ path: 'test-results/walkthrough-7-done.png' });
    // Escape closes it and gives the focus back to the header button.
    await page.keyboard.press('Escape');
    await expect.poll(() => dialog(page).count()).toBe(0);
    expect((await active(page)).id).toBe('walkthrough-button');
    expect(await page.locator('#walkthrough-button').getAttribute('aria-expanded')).toBe('false');
    expect(pageErrors).toEqual([]);
    await page.close();
  }, 480_000);

  it('runs with the user\'s endpoint when one is set up, reusing the walkthrough scan; Escape and reopening keep the step', async () => {
    const page = await openApp();
    await page.evaluate((baseUrl) => {
      localStorage.setItem('neurolens.llm.baseUrl', baseUrl);
      localStorage.setItem('neurolens.llm.model', 'fake-model');
    }, server.baseUrl);
    await page.reload();
    await page.getByTestId('model-status').waitFor({ timeout: 120_000 });
    server.reset();

    await tabTo(page, (a) => a.id === 'walkthrough-button');
    await page.keyboard.press('Enter');
    await dialog(page).waitFor();
    // The walkthrough starts where it is: its state is per visit; this is a fresh page.
    await tabTo(page, (a) => a.testid === 'walkthrough-next');
    await nextReady(page, 60_000);
    await nextStep(page, 1);
    await nextStep(page, 2);
    await nextReady(page, 30_000);
    expect(await page.getByTestId('walkthrough-status').innerText()).toMatch(/the walkthrough scan made earlier in this browser is used again/);

    // Escape, then reopen with the keyboard: the same step comes back.
    await page.keyboard.press('Escape');
    await expect.poll(() => dialog(page).count()).toBe(0);
    expect((await active(page)).id).toBe('walkthrough-button');
    await page.keyboard.press('Enter');
    await dialog(page).waitFor();
    expect(await stepTitle(page).textContent()).toBe(`3. ${WALKTHROUGH_STEPS[2].title}`);
    await tabTo(page, (a) => a.testid === 'walkthrough-next');

    await nextStep(page, 3);
    await nextReady(page, 120_000);
    const llm = await page.getByTestId('walkthrough-llm').innerText();
    expect(llm).toContain(`Your LLM endpoint from Settings answers (fake-model at ${server.baseUrl})`);
    expect(llm).not.toMatch(/Scripted/);
    expect(await page.getByTestId('walkthrough-explanation').innerText()).toMatch(/^Explanation\s*“numbers: tokens made only of digits”/);
    // "Test connection", one explanation, 10 simulations of it and 10 of the wrong one: all to the server.
    expect(server.chatRequests).toHaveLength(22);
    await nextStep(page, 4);
    await nextStep(page, 5);
    const scores = await page.getByTestId('walkthrough-scores').locator('tbody tr').allInnerTexts();
    expect(scores[0]).toMatch(/“numbers: tokens made only of digits”\s+(0\.9\d|1\.00)$/);
    expect(await dialog(page).innerText()).not.toMatch(/Scripted answers/);
    await page.screenshot({ path: 'test-results/walkthrough-6-score-own-llm.png' });
    await nextStep(page, 6);
    // Finish closes it.
    await page.keyboard.press('Enter');
    await expect.poll(() => dialog(page).count()).toBe(0);
    expect(pageErrors).toEqual([]);
    await page.close();
  }, 480_000);

  it('the scripted preset in Settings says what it is, passes "Test connection", and the walkthrough then uses it', async () => {
    const page = await openApp();
    await showView(page, 'Settings');
    await page.getByRole('group', { name: 'llm presets' }).getByRole('button', { name: 'Built-in scripted (toy model only)' }).click();
    expect(await page.getByLabel('llm endpoint').inputValue()).toBe('scripted:planted');
    expect(await page.getByLabel('llm model').inputValue()).toBe('scripted-planted-rules');
    expect(await page.getByTestId('scripted-note').innerText()).toMatch(/^Scripted answers\s*No language model was asked.*only for the toy model's planted neurons/);
    await page.getByTestId('test-connection').click();
    await expect.poll(() => page.getByTestId('connection-result').innerText()).toMatch(/^Connected \(\d+ ms\)\. The endpoint returns logprobs: simulations run in logprob mode/);
    expect(await contrastFailures(page)).toEqual([]);

    await page.locator('#walkthrough-button').focus();
    await page.keyboard.press('Enter');
    await tabTo(page, (a) => a.testid === 'walkthrough-next');
    await nextReady(page, 60_000);
    await nextStep(page, 1);
    await nextStep(page, 2);
    await nextReady(page, 30_000);
    await nextStep(page, 3);
    await nextReady(page, 120_000);
    expect(await page.getByTestId('walkthrough-llm').innerText()).toMatch(/^Scripted answers\s*You chose the built-in scripted LLM in Settings\.$/);
    expect(pageErrors).toEqual([]);
    await page.close();
  }, 300_000);
});
