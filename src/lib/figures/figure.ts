/**
 * A figure as a list of plain shapes (rectangles, lines, text) in pixel coordinates: the one
 * layout that is both drawn on screen (a Svelte component renders the shapes as SVG elements,
 * text as text) and exported (`figureToSvg` writes a standalone SVG file; a PNG is that SVG drawn
 * on a canvas). Framework-free, so it is tested in Node.
 *
 * Text from corpora and models goes into the SVG escaped, with characters XML forbids replaced,
 * so a file always parses.
 */

export interface RectShape {
  kind: 'rect';
  x: number;
  y: number;
  width: number;
  height: number;
  fill: string;
  stroke?: string;
  radius?: number;
}

export interface LineShape {
  kind: 'line';
  x1: number;
  y1: number;
  x2: number;
  y2: number;
  stroke: string;
  width?: number;
  dashed?: boolean;
}

export interface TextShape {
  kind: 'text';
  x: number;
  /** The baseline. */
  y: number;
  text: string;
  size: number;
  fill?: string;
  anchor?: 'start' | 'middle' | 'end';
  bold?: boolean;
  mono?: boolean;
}

export type Shape = RectShape | LineShape | TextShape;

export interface Figure {
  width: number;
  height: number;
  /** Says what the figure shows: the SVG's <title>, the on-screen figure's accessible name. */
  title: string;
  /** A longer text alternative: the SVG's <desc>. */
  description: string;
  shapes: Shape[];
}

export const FONT_SANS = 'system-ui, -apple-system, "Segoe UI", Roboto, sans-serif';
export const FONT_MONO = 'ui-monospace, SFMono-Regular, Menlo, Consolas, monospace';

/** Characters XML 1.0 does not allow (C0 controls but tab, newline and CR; lone surrogates; U+FFFE/F). */
const XML_FORBIDDEN = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/** Text made safe for XML content and attribute values. */
export function xmlText(text: string): string {
  return text
    .replace(XML_FORBIDDEN, '\uFFFD')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;');
}

/** Coordinates with at most two decimals, so files stay small and diff cleanly. */
export const px = (v: number): string => String(Math.round(v * 100) / 100);

/** A standalone SVG document of the figure (white background, fonts named, no external references). */
export function figureToSvg(figure: Figure): string {
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${px(figure.width)}" height="${px(figure.height)}" viewBox="0 0 ${px(figure.width)} ${px(figure.height)}" font-family="${xmlText(FONT_SANS)}">`,
    `<title>${xmlText(figure.title)}</title>`,
    `<desc>${xmlText(figure.description)}</desc>`,
    `<rect x="0" y="0" width="${px(figure.width)}" height="${px(figure.height)}" fill="#ffffff"/>`,
  ];
  for (const s of figure.shapes) out.push(shapeToSvg(s));
  out.push('</svg>');
  return out.join('\n');
}

function shapeToSvg(s: Shape): string {
  switch (s.kind) {
    case 'rect':
      return `<rect x="${px(s.x)}" y="${px(s.y)}" width="${px(s.width)}" height="${px(s.height)}" fill="${xmlText(s.fill)}"${s.stroke ? ` stroke="${xmlText(s.stroke)}"` : ''}${s.radius ? ` rx="${px(s.radius)}"` : ''}/>`;
    case 'line':
      return `<line x1="${px(s.x1)}" y1="${px(s.y1)}" x2="${px(s.x2)}" y2="${px(s.y2)}" stroke="${xmlText(s.stroke)}" stroke-width="${px(s.width ?? 1)}"${s.dashed ? ' stroke-dasharray="4 3"' : ''}/>`;
    case 'text':
      return `<text x="${px(s.x)}" y="${px(s.y)}" font-size="${px(s.size)}" fill="${xmlText(s.fill ?? '#1d2330')}"${s.anchor && s.anchor !== 'start' ? ` text-anchor="${s.anchor}"` : ''}${s.bold ? ' font-weight="700"' : ''}${s.mono ? ` font-family="${xmlText(FONT_MONO)}"` : ''} xml:space="preserve">${xmlText(s.text)}</text>`;
  }
}

/** Columns a string takes in a monospace font: wide (East Asian, emoji) characters take two. */
export function textColumns(text: string): number {
  let columns = 0;
  for (const ch of text) columns += isWide(ch.codePointAt(0)!) ? 2 : 1;
  return columns;
}

function isWide(cp: number): boolean {
  return (
    (cp >= 0x1100 && cp <= 0x115f) ||
    (cp >= 0x2e80 && cp <= 0xa4cf) ||
    (cp >= 0xac00 && cp <= 0xd7a3) ||
    (cp >= 0xf900 && cp <= 0xfaff) ||
    (cp >= 0xfe30 && cp <= 0xfe4f) ||
    (cp >= 0xff00 && cp <= 0xff60) ||
    (cp >= 0xffe0 && cp <= 0xffe6) ||
    (cp >= 0x1f300 && cp <= 0x1faff) ||
    (cp >= 0x20000 && cp <= 0x3fffd)
  );
}
