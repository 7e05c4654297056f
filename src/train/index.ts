export { AdamW, type AdamWOptions } from './adamw.js';
export { learningRate, validateSchedule, type LrSchedule } from './schedule.js';
export { initialWeights, NormalRng } from './init.js';
export { hfConfig, saveModel, type SaveModelOptions, type SpecialTokenIds } from './checkpoint.js';
export {
  train, flatWeights, nextTokenSequence, choiceSequence,
  type TrainSequence, type TrainOptions, type TrainResult, type StepLog,
} from './trainer.js';
