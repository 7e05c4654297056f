export {
  drawFisherExamples, accumulateFisher, computeFisher, writeFisher, FISHER_MODES, FISHER_EPS, exampleTokens,
  type FisherExample, type FisherOptions, type FisherStats, type FisherMode,
} from './fisher.js';
