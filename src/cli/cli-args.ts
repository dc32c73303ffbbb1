/** Argument parsing shared by the commands: the options every model-loading command takes, and errors kept to one line. */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { CliError } from './cli-error.ts';

/** --model, --dtype and --onnx: which model, which variant, which graph file (see resolve-model.ts). */
export const MODEL_OPTIONS = {
  model: { type: 'string' },
  dtype: { type: 'string' },
  onnx: { type: 'string' },
} as const;

/** --backend, for the commands that run the model. */
export const BACKEND_OPTION = { backend: { type: 'string' } } as const;

/** --help, which every command takes. */
export const HELP_OPTION = { help: { type: 'boolean', short: 'h', default: false } } as const;

/** --json and --help. */
export const OUTPUT_OPTIONS = { json: { type: 'boolean', default: false }, ...HELP_OPTION } as const;

/**
 * parseArgs with a mistake reported as one line followed by the command's help (exit 2).
 * parseArgs explains some mistakes over several lines (a negative number taken for an option).
 */
export function parseCommandArgs<T extends ParseArgsConfig>(config: T, help: string): ReturnType<typeof parseArgs<T>> {
  try {
    // parseArgs is strict unless told otherwise: unknown options are mistakes.
    return parseArgs<T>(config);
  } catch (err) {
    throw new CliError(`${(err as Error).message.replace(/\s*\n\s*/g, ' ')}\n${help}`, 2);
  }
}
