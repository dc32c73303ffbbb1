/**
 * The toy model's planted neurons (the bundled `toy-planted` model): which neurons were wired by
 * hand, what each responds to, and its exact rule, in words and as code. The generator
 * (scripts/toy/planted-model.ts) wires the weights from these rules and writes them (without the
 * code) as the model's planted.json; the built-in scripted LLM (src/lib/explain/scripted-llm.ts)
 * answers from them. One definition, so the model and what is said about it cannot drift apart.
 */

/** One planted neuron and its ground-truth rule. */
export interface PlantedNeuronRule {
  layer: number;
  neuron: number;
  /** Short stable id, e.g. "digits". */
  id: string;
  /** One-line human explanation of what the neuron responds to. */
  description: string;
  /** The exact rule, in words. */
  rule: string;
  /** Ground truth: does the neuron fire on token `index` of this sequence of decoded token texts? */
  matches(tokenTexts: readonly string[], index: number): boolean;
}

/** Token tests the planted features are made of (one token's decoded text each). */
export const PLANTED_TOKEN_TESTS = {
  digits: (t: string): boolean => /^ ?[0-9]+$/.test(t),
  capitalised: (t: string): boolean => /^ ?[A-Z][a-z]/.test(t),
  closingQuote: (t: string): boolean => t.includes('"') && !t.startsWith(' '),
  the: (t: string): boolean => t === ' the',
};

const test = PLANTED_TOKEN_TESTS;

export const PLANTED_NEURON_RULES: readonly PlantedNeuronRule[] = [
  {
    layer: 0, neuron: 37, id: 'digits',
    description: 'numbers: tokens made only of digits',
    rule: 'token text, ignoring one leading space, is one or more ASCII digits (/^ ?[0-9]+$/)',
    matches: (t, i) => test.digits(t[i]),
  },
  {
    layer: 0, neuron: 150, id: 'capitalised',
    description: 'capitalised words',
    rule: 'token text, after an optional leading space, starts with an uppercase A-Z followed by a lowercase a-z (/^ ?[A-Z][a-z]/)',
    matches: (t, i) => test.capitalised(t[i]),
  },
  {
    layer: 0, neuron: 203, id: 'the',
    description: 'the word " the"',
    rule: 'token text is exactly " the" (lowercase, with its leading space)',
    matches: (t, i) => test.the(t[i]),
  },
  {
    layer: 1, neuron: 91, id: 'closing-quote',
    description: 'closing double quotes',
    rule: 'token text contains a double quote (") and does not start with a space (e.g. ", .", ,")',
    matches: (t, i) => test.closingQuote(t[i]),
  },
  {
    layer: 1, neuron: 222, id: 'after-the',
    description: 'the word right after " the"',
    rule: 'the previous token is exactly " the" (never the first token)',
    matches: (t, i) => i > 0 && test.the(t[i - 1]),
  },
];
