/**
 * WCAG contrast of what a page shows, computed in the page from the rendered colours: every
 * visible piece of text against the background painted behind it (its own and its ancestors'
 * backgrounds blended, with opacity). Inactive controls are exempt, as WCAG 1.4.3 says.
 */
import type { Page } from 'playwright-core';

/** Text pieces whose contrast with what is behind them is below WCAG AA (4.5:1; 3:1 for large text), with the numbers. */
export async function contrastFailures(page: Page): Promise<string[]> {
  return page.evaluate(() => {
    type Rgba = [number, number, number, number];
    const parse = (css: string): Rgba => {
      const m = /rgba?\(([^)]+)\)/.exec(css);
      if (!m) return [0, 0, 0, 0];
      const parts = m[1].split(/[ ,/]+/).filter(Boolean).map(Number);
      return [parts[0], parts[1], parts[2], parts[3] ?? 1];
    };
    const over = (top: Rgba, under: Rgba): Rgba => {
      const a = top[3] + under[3] * (1 - top[3]);
      if (a === 0) return [0, 0, 0, 0];
      const mix = (i: number) => (top[i] * top[3] + under[i] * under[3] * (1 - top[3])) / a;
      return [mix(0), mix(1), mix(2), a];
    };
    const luminance = ([r, g, b]: Rgba) => {
      const lin = (c: number) => ((c /= 255) <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4);
      return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
    };
    /** What is painted behind `el`: its own and its ancestors' backgrounds, blended (those it lies within). */
    const backgroundOf = (el: Element): Rgba => {
      const layers: Rgba[] = [];
      const box = el.getBoundingClientRect();
      const [x, y] = [box.left + box.width / 2, box.top + box.height / 2];
      for (let node: Element | null = el; node; node = node.parentElement) {
        const style = getComputedStyle(node);
        // Something placed outside an ancestor (e.g. a label under a token) is not drawn on its background.
        const around = node.getBoundingClientRect();
        const inside = node === document.body || node === document.documentElement || (x >= around.left && x <= around.right && y >= around.top && y <= around.bottom);
        if (!inside) continue;
        // A token strip group's glyph is drawn over its parts' colours (absolutely placed siblings).
        const parts = node.classList.contains('glyph') ? node.parentElement?.querySelectorAll('.part') : undefined;
        if (parts?.length) {
          const strongest = [...parts].map((p) => parse(getComputedStyle(p).backgroundColor)).sort((a, b) => b[3] - a[3])[0];
          layers.push(strongest);
        }
        const bg = parse(style.backgroundColor);
        if (bg[3] > 0) layers.push(bg);
        if (bg[3] >= 1) break;
      }
      let result: Rgba = [255, 255, 255, 1];
      for (const layer of layers.reverse()) result = over(layer, result);
      return result;
    };
    const failures: string[] = [];
    const seen = new Set<Element>();
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    for (let text = walker.nextNode(); text; text = walker.nextNode()) {
      const el = text.parentElement;
      if (!el || seen.has(el) || !text.textContent?.trim()) continue;
      seen.add(el);
      const style = getComputedStyle(el);
      const box = el.getBoundingClientRect();
      if (box.width === 0 || box.height === 0 || !el.checkVisibility({ visibilityProperty: true, contentVisibilityAuto: true })) continue;
      if (el.closest('[hidden], .visually-hidden, .skip, option')) continue;
      // Inactive controls are exempt (WCAG 1.4.3).
      if (el.closest('button:disabled, input:disabled, select:disabled, textarea:disabled, [aria-disabled="true"]')) continue;
      let opacity = 1;
      for (let node: Element | null = el; node; node = node.parentElement) opacity *= Number(getComputedStyle(node).opacity);
      const bg = backgroundOf(el);
      const fgRaw = parse(style.color);
      const fg = over([fgRaw[0], fgRaw[1], fgRaw[2], fgRaw[3] * opacity], bg);
      const [l1, l2] = [luminance(fg), luminance(bg)].sort((a, b) => b - a);
      const ratio = (l1 + 0.05) / (l2 + 0.05);
      const size = parseFloat(style.fontSize);
      const large = size >= 24 || (size >= 18.66 && Number(style.fontWeight) >= 700);
      const needed = large ? 3 : 4.5;
      if (ratio < needed) {
        const where = `${el.tagName.toLowerCase()}${el.className && typeof el.className === 'string' ? `.${el.className.trim().split(/\s+/).join('.')}` : ''}`;
        failures.push(`${ratio.toFixed(2)} < ${needed}: ${JSON.stringify(text.textContent.trim().slice(0, 40))} in ${where} (${style.color} on rgb(${bg.slice(0, 3).map(Math.round).join(', ')}))`);
      }
    }
    return failures;
  });
}

