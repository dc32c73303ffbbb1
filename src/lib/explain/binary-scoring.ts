/**
 * Balanced accuracy for the binary scorers (detection: "does this excerpt activate the neuron?";
 * fuzzing: "are the highlighted tokens the ones it fires on?"). Balanced accuracy is the mean of
 * the true-positive and true-negative rates, so a scorer that always answers the majority class
 * gets 0.5 however unbalanced the examples are.
 */

export class BinaryScoringError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BinaryScoringError';
  }
}

export interface ConfusionCounts {
  truePositives: number;
  falseNegatives: number;
  trueNegatives: number;
  falsePositives: number;
}

/** Counts of each outcome; `labels[i]` is the truth, `predictions[i]` the scorer's answer. */
export function confusionCounts(labels: readonly boolean[], predictions: readonly boolean[]): ConfusionCounts {
  if (labels.length !== predictions.length) {
    throw new BinaryScoringError(`${labels.length} labels but ${predictions.length} predictions`);
  }
  const counts: ConfusionCounts = { truePositives: 0, falseNegatives: 0, trueNegatives: 0, falsePositives: 0 };
  labels.forEach((label, i) => {
    const prediction = predictions[i];
    if (typeof label !== 'boolean') throw new BinaryScoringError(`labels[${i}]: expected a boolean, got ${String(label)}`);
    if (typeof prediction !== 'boolean') {
      throw new BinaryScoringError(`predictions[${i}]: expected a boolean, got ${String(prediction)}`);
    }
    if (label) {
      if (prediction) counts.truePositives++;
      else counts.falseNegatives++;
    } else if (prediction) counts.falsePositives++;
    else counts.trueNegatives++;
  });
  return counts;
}

/**
 * (TPR + TNR) / 2, or null when either class is absent from `labels` (one of the rates would be
 * 0/0, and plain accuracy would silently stand in for it).
 */
export function balancedAccuracy(labels: readonly boolean[], predictions: readonly boolean[]): number | null {
  const c = confusionCounts(labels, predictions);
  const positives = c.truePositives + c.falseNegatives;
  const negatives = c.trueNegatives + c.falsePositives;
  if (positives === 0 || negatives === 0) return null;
  return (c.truePositives / positives + c.trueNegatives / negatives) / 2;
}
