/**
 * Short definitions of the paper's terms (Bills et al. 2023, "Language models can explain neurons
 * in language models") as this app uses them, shown by `<Term id="…">` on hover and on focus.
 */
export const GLOSSARY = {
  activation: {
    term: 'activation',
    definition:
      'The number a neuron puts out at one token: how strongly it responds there. For GPT-2’s MLP neurons it is the value after the GELU, near 0 on most tokens and large where the neuron “fires”.',
  },
  'mlp-neuron': {
    term: 'MLP neuron',
    definition:
      'One unit of the feed-forward (MLP) block inside a transformer layer. It reads each token’s internal state, passes it through a GELU and writes its output back. Named layer:index, e.g. 0:37; GPT-2 small has 3,072 per layer.',
  },
  excerpt: {
    term: 'excerpt',
    definition: 'A short window of text, 64 tokens here, cut from a corpus, together with the neuron’s activation on each of its tokens.',
  },
  'top-activating-excerpt': {
    term: 'top-activating excerpt',
    definition:
      'One of the excerpts on which the neuron reached its highest activations in the whole scan. The explainer is shown some of these; others are kept back to test the explanation.',
  },
  'random-sample': {
    term: 'random sample',
    definition:
      'Excerpts drawn at random from the corpus, whatever the neuron does on them. Scoring on them checks that an explanation does not predict the neuron firing where it stays quiet.',
  },
  quantile: {
    term: 'quantile',
    definition:
      'A cut point of a distribution: the 0.99 quantile of the neuron’s excerpt maxima is the value 99% of excerpts stay below. Samples between quantiles show how the neuron behaves at weaker activations, not just at its peak.',
  },
  explanation: {
    term: 'explanation',
    definition:
      'A short phrase saying what a neuron responds to, written by an LLM (the explainer) after reading its top-activating excerpts. It completes “the main thing this neuron does is find …”.',
  },
  simulation: {
    term: 'simulation',
    definition:
      'A prediction of the neuron’s activation on every token of an excerpt, on a 0–10 scale, made from the explanation alone. Comparing it with the real activations tests the explanation.',
  },
  simulator: {
    term: 'simulator',
    definition:
      'The LLM that reads an explanation and an excerpt and predicts the activation of each token. It runs in logprob mode when the endpoint returns token probabilities, and in sampled mode when it does not.',
  },
  'logprob-mode': {
    term: 'logprob mode',
    definition:
      'The simulator writes a value from 0 to 10 for each token, and the probabilities it gave every possible value are averaged into an expected value. More precise than sampled mode; needs an endpoint that returns logprobs.',
  },
  'sampled-mode': {
    term: 'sampled mode',
    definition:
      'The simulator answers with the values themselves (as JSON) and the values it wrote are used as they are. Works with any endpoint, but is coarser than logprob mode.',
  },
  'correlation-score': {
    term: 'correlation score',
    definition:
      'How closely the simulated activations follow the real ones: their correlation over the scored excerpts (held-out top-activating ones and random ones). 1 means the explanation predicts the neuron perfectly, 0 not at all.',
  },
  'ablation-score': {
    term: 'ablation score',
    definition:
      'A causal check: the neuron’s real activations are replaced by the simulated ones, and the model’s next-token predictions are compared with the original. 1 means the simulation can stand in for the neuron; 0 means it does no better than the neuron’s mean.',
  },
  calibration: {
    term: 'calibration',
    definition:
      'Mapping the simulator’s 0–10 values onto the neuron’s own units with a straight line fitted on separate excerpts, so error-based scores compare like with like. The correlation score does not need it.',
  },
  coverage: {
    term: 'coverage',
    definition:
      'The share of tokens for which the simulator’s answer gave a usable value. Missing values are left out, never counted as zero; below 1, the score rests on fewer tokens.',
  },
  'peak-token': {
    term: 'peak token',
    definition: 'The token at which an excerpt reaches the neuron’s highest activation. Listing the peak tokens of the top excerpts shows at a glance what the neuron fires on.',
  },
  'fires-on-share': {
    term: 'fires-on share (sparsity)',
    definition:
      'The share of scanned tokens on which the neuron fires (its activation is above zero). A small share means a sparse, selective neuron; a large one, a neuron active on most text.',
  },
} as const;

export type GlossaryId = keyof typeof GLOSSARY;
