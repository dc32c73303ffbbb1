/**
 * How the app looks and reads, in headless Chromium on the production build:
 * - every view of this area (Probe, Datasets, Settings, and the walkthrough panel) at a desktop
 *   window (1400×900), a 1024×768 screen at 150% zoom (683×512 CSS pixels at device scale 1.5) and a
 *   420 px phone, with no sideways scrolling; at the zoomed size the first screen of the Probe view
 *   shows the text box and the token strip;
 * - presentation mode at a projector's 1280×720 and at 1400×900: large type, no sideways scrolling;
 * - the glossary: a term's definition shows on hover and on keyboard focus, is the term's
 *   description (aria-describedby → role=tooltip), stays inside the window, and Escape closes it;
 * - contrast: every visible piece of text against the background it is drawn on, computed from the
 *   rendered colours, meets WCAG AA (4.5:1, or 3:1 for large text).
 * Screenshots of every view and size go to test-results/layout-*.png.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { browserAvailable, launchChromium, showView, startBuiltApp } from './helpers/browser.ts';
import type { StaticServer } from './helpers/static-server.ts';
import { contrastFailures } from './helpers/contrast.ts';

const run = browserAvailable() ? describe : describe.skip;

const SIZES = {
  desktop: { viewport: { width: 1400, height: 900 }, deviceScaleFactor: 1 },
  zoomed: { viewport: { width: 683, height: 512 }, deviceScaleFactor: 1.5 },
  phone: { viewport: { width: 420, height: 860 }, deviceScaleFactor: 2 },
  projector: { viewport: { width: 1280, height: 720 }, deviceScaleFactor: 1 },
} as const;
type SizeName = keyof typeof SIZES;

const TEXT = 'In 1969, Apollo 11 landed on the Moon; "one small step," said Armstrong. Emoji 🦊 and 日本語.';

const overflow = (page: Page) =>
  page.evaluate(() => ({ scrollWidth: document.scrollingElement!.scrollWidth, innerWidth, wide: [...document.querySelectorAll('body *')].filter((e) => e.getBoundingClientRect().right > innerWidth + 1 && getComputedStyle(e).position !== 'fixed').slice(0, 5).map((e) => `${e.tagName}.${(e as HTMLElement).className}`) }));

run('layout, presentation, glossary and contrast', () => {
  let app: StaticServer;
  let browser: Browser;
  const contexts: BrowserContext[] = [];
  const pageErrors: string[] = [];

  beforeAll(async () => {
    app = await startBuiltApp();
    browser = await launchChromium();
  }, 300_000);

  afterAll(async () => {
    await browser?.close();
    await app?.close();
  });

  /** A fresh page at `size`, the model loaded, TEXT probed and, with `scan`, a small scan done. */
  async function openAt(size: SizeName, options: { scan?: boolean; presentation?: boolean } = {}): Promise<Page> {
    const context = await browser.newContext(SIZES[size]);
    contexts.push(context);
    if (options.presentation) await context.addInitScript(() => localStorage.setItem('neurolens.display', JSON.stringify({ activations: 'bars', presentation: true })));
    const page = await context.newPage();
    page.on('pageerror', (err) => pageErrors.push(err.message));
    await page.goto(`${app.url}?text=${encodeURIComponent(TEXT)}`);
    await page.getByTestId('model-status').waitFor({ timeout: 120_000 });
    await page.getByTestId('token-strip').waitFor({ timeout: 60_000 });
    if (options.scan) {
      await showView(page, 'Datasets');
      await page.getByLabel('max excerpts').fill('24');
      await page.getByTestId('scan-start').click();
      await expect.poll(() => page.getByTestId('scan-list').innerText().catch(() => ''), { timeout: 180_000 }).toMatch(/done/);
      await showView(page, 'Probe');
    }
    return page;
  }

  /** Sideways scrolling, described, or nothing. */
  async function sidewaysScroll(page: Page): Promise<string[]> {
    const o = await overflow(page);
    return o.scrollWidth <= o.innerWidth ? [] : [`the page is ${o.scrollWidth} px wide in a ${o.innerWidth} px window (${o.wide.join(', ')})`];
  }

  async function shoot(page: Page, name: string) {
    await page.evaluate(() => scrollTo(0, 0));
    await page.screenshot({ path: `test-results/layout-${name}.png` });
    await page.screenshot({ path: `test-results/layout-${name}-full.png`, fullPage: true });
  }

  /** Every view of this area at a size: screenshots, no sideways scrolling, and the contrast check. */
  async function checkViews(page: Page, size: string) {
    const failures: string[] = [];
    await shoot(page, `${size}-probe`);
    failures.push(...[...(await sidewaysScroll(page)), ...(await contrastFailures(page))].map((f) => `probe: ${f}`));
    for (const view of ['Datasets', 'Settings'] as const) {
      await showView(page, view);
      await page.waitForTimeout(200);
      await shoot(page, `${size}-${view.toLowerCase()}`);
      failures.push(...[...(await sidewaysScroll(page)), ...(await contrastFailures(page))].map((f) => `${view}: ${f}`));
    }
    await showView(page, 'Probe');
    await page.locator('#walkthrough-button').click();
    await page.getByTestId('walkthrough').waitFor();
    await shoot(page, `${size}-walkthrough`);
    failures.push(...[...(await sidewaysScroll(page)), ...(await contrastFailures(page))].map((f) => `walkthrough: ${f}`));
    await page.keyboard.press('Escape');
    await showView(page, 'Probe');
    return failures;
  }

  it('desktop 1400×900: every view fits, and all text meets AA contrast', async () => {
    const page = await openAt('desktop', { scan: true });
    // The contrast check finds low contrast where there is some (grey #999 on the page background: 2.66:1).
    await page.evaluate(() => {
      const pale = Object.assign(document.createElement('p'), { id: 'pale', textContent: 'pale words' });
      pale.style.color = '#999';
      document.querySelector('main')!.prepend(pale);
    });
    expect(await contrastFailures(page)).toEqual([expect.stringMatching(/^2\.66 < 4\.5: "pale words" in p \(rgb\(153, 153, 153\) on rgb\(246, 247, 251\)\)$/)]);
    await page.evaluate(() => document.getElementById('pale')!.remove());
    // Activations shown as numbers too: their small print must read as well.
    await showView(page, 'Settings');
    await page.getByLabel('colour, bars and numbers').check();
    await showView(page, 'Probe');
    await page.locator('[data-testid="token-strip"] .num').first().waitFor();
    await page.screenshot({ path: 'test-results/layout-desktop-probe-numbers.png' });
    expect(await contrastFailures(page)).toEqual([]);
    await showView(page, 'Settings');
    await page.getByLabel('colour and bars', { exact: true }).check();
    await showView(page, 'Probe');
    expect(await checkViews(page, 'desktop')).toEqual([]);
  }, 300_000);

  it('1024×768 at 150% zoom: no sideways scrolling, and the first screen shows the text box and the token strip', async () => {
    const page = await openAt('zoomed', { scan: true });
    expect(await checkViews(page, 'zoomed')).toEqual([]);
    await page.evaluate(() => scrollTo(0, 0));
    const box = await page.locator('#probe-text').boundingBox();
    const strip = await page.getByTestId('token-strip').boundingBox();
    expect(box!.y + box!.height, 'the text box ends on the first screen').toBeLessThanOrEqual(512);
    // Its first line of tokens (line height 2.1em) is on the first screen.
    expect(strip!.y + 34, 'the token strip starts on the first screen').toBeLessThanOrEqual(512);
  }, 300_000);

  it('420 px phone: no sideways scrolling in any view', async () => {
    const page = await openAt('phone', { scan: true });
    expect(await checkViews(page, 'phone')).toEqual([]);
  }, 300_000);

  it('presentation mode at a projector\'s 1280×720 and at 1400×900: large type, nothing sideways, AA contrast', async () => {
    for (const size of ['projector', 'desktop'] as const) {
      const page = await openAt(size, { presentation: true });
      const sizes = await page.evaluate(() => ({
        root: parseFloat(getComputedStyle(document.documentElement).fontSize),
        strip: parseFloat(getComputedStyle(document.querySelector('[data-testid="token-strip"]')!).fontSize),
        pressed: document.querySelector('.tools [aria-pressed]')?.getAttribute('aria-pressed'),
      }));
      const failures = await checkViews(page, `presentation-${size}`);
      expect(sizes.pressed).toBe('true');
      expect(sizes.root).toBeGreaterThanOrEqual(20);
      expect(sizes.strip).toBeGreaterThanOrEqual(26);
      expect(failures).toEqual([]);
    }
  }, 300_000);

  it('glossary terms show their definition on hover and on focus, are described by it, and close on Escape', async () => {
    for (const size of ['desktop', 'phone'] as const) {
      const page = await openAt(size);
      await showView(page, 'Datasets');
      const term = page.getByRole('term').filter({ hasText: 'top-activating excerpts' }).first();
      const tipId = await term.getAttribute('aria-describedby');
      const tip = page.locator(`[id="${tipId}"]`);
      expect(await tip.getAttribute('role')).toBe('tooltip');
      expect(await tip.isVisible()).toBe(false);

      // Hover shows it, inside the window; moving away hides it.
      await term.hover();
      await tip.waitFor({ state: 'visible' });
      expect(await tip.innerText()).toMatch(/^top-activating excerpt: One of the excerpts on which the neuron reached its highest activations/);
      const box = (await tip.boundingBox())!;
      const width = SIZES[size].viewport.width;
      expect(box.x).toBeGreaterThanOrEqual(0);
      expect(box.x + box.width).toBeLessThanOrEqual(width);
      await page.screenshot({ path: `test-results/layout-${size}-glossary-hover.png` });
      // Escape closes it while the pointer stays.
      await page.keyboard.press('Escape');
      await tip.waitFor({ state: 'hidden' });
      await page.mouse.move(1, 1);
      await page.waitForTimeout(300);
      expect(await tip.isVisible()).toBe(false);

      // Keyboard focus shows it; the focused term's description is the definition; Escape closes it.
      await term.focus();
      await tip.waitFor({ state: 'visible' });
      const described = await page.evaluate(() => {
        const id = document.activeElement?.getAttribute('aria-describedby');
        return id ? document.getElementById(id)?.textContent : null;
      });
      expect(described).toMatch(/highest activations/);
      await page.keyboard.press('Escape');
      await tip.waitFor({ state: 'hidden' });
      expect(await page.evaluate(() => document.activeElement?.getAttribute('role'))).toBe('term');
      // Tab reaches the next term, whose tooltip opens.
      await page.keyboard.press('Tab');
      expect(await page.evaluate(() => document.activeElement?.textContent)).toBe('random');
      await expect.poll(() => page.locator('[role="tooltip"]:visible').innerText()).toMatch(/^random sample: /);
      await page.keyboard.press('Tab');
      await expect.poll(() => page.locator('[role="tooltip"]:visible').count()).toBe(1);
    }
    // Terms appear where the paper's words are used in these views.
    const page = await openAt('desktop');
    const termsIn = async () => (await page.getByRole('term').allInnerTexts()).map((t) => t.trim());
    expect(await termsIn()).toEqual(expect.arrayContaining(['activation', 'neurons']));
    await showView(page, 'Settings');
    expect(await termsIn()).toEqual(expect.arrayContaining(['explanations', 'simulations', 'Activations']));
    expect(pageErrors).toEqual([]);
  }, 300_000);
});
