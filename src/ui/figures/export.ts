/**
 * Figures saved as files: SVG as written by figureToSvg, PNG by drawing that SVG on a canvas (an
 * image from a blob: URL, which the page's CSP allows), at twice the figure's size for sharpness.
 */
import { figureToSvg, type Figure } from '../../lib/figures/figure.ts';
import { download } from '../download.ts';

export function downloadSvg(figure: Figure, name: string): void {
  download(`${name}.svg`, figureToSvg(figure), 'image/svg+xml');
}

/** The figure as a PNG image, `scale` device pixels per figure pixel. */
export async function figureToPng(figure: Figure, scale = 2): Promise<Blob> {
  const url = URL.createObjectURL(new Blob([figureToSvg(figure)], { type: 'image/svg+xml' }));
  try {
    const image = new Image();
    image.src = url;
    await image.decode();
    const canvas = document.createElement('canvas');
    canvas.width = Math.ceil(figure.width * scale);
    canvas.height = Math.ceil(figure.height * scale);
    const context = canvas.getContext('2d');
    if (!context) throw new Error('this browser cannot draw on a canvas');
    context.scale(scale, scale);
    context.drawImage(image, 0, 0, figure.width, figure.height);
    return await new Promise<Blob>((resolve, reject) =>
      canvas.toBlob((blob) => (blob ? resolve(blob) : reject(new Error('the browser could not make a PNG of this figure'))), 'image/png'),
    );
  } finally {
    URL.revokeObjectURL(url);
  }
}

export async function downloadPng(figure: Figure, name: string): Promise<void> {
  download(`${name}.png`, await figureToPng(figure), 'image/png');
}
