/**
 * The model behind each simulated deployment, and which of Azure's operations
 * it serves. On Azure a deployment is one model, and calling an operation the
 * model does not support is refused (see operationNotSupported below), so the
 * simulator must know what each deployment is.
 */

/**
 * Azure's names for operations, as its OperationNotSupported message spells
 * them. chatCompletion, completion and embeddings are observed (see
 * operationNotSupported); imageGenerations was seen from Azure in public
 * troubleshooting notes for a DALL-E deployment called with gpt-4o; responses
 * in a client's test of Azure's wording. The edits and audio names follow the
 * same camelCase pattern but are not documented anywhere we could find.
 */
export type AzureOperation =
  | 'chatCompletion' | 'completion' | 'embeddings' | 'responses'
  | 'imageGenerations' | 'imageEdits' | 'audioTranscription' | 'audioTranslation' | 'audioSpeech';

export interface SimModel {
  /** The base model name Azure puts in its messages, e.g. "gpt-35-turbo". */
  readonly name: string;
  /** What a reply's `model` field says (Azure reports the model version). */
  readonly reported: string;
  readonly operations: readonly AzureOperation[];
  /** An embeddings model's limits: the most `dimensions` it can give, and the tokens one input may have. */
  readonly embedding?: { readonly maxDimensions: number; readonly maxInputTokens: number };
  /** An image model's documented sizes. */
  readonly imageSizes?: readonly string[];
  /** A speech model's voices. */
  readonly voices?: readonly string[];
}

/**
 * The voices of tts and tts-hd in Azure's audio speech reference, and the five
 * gpt-4o-mini-tts adds (OpenAI's text-to-speech guide lists them for it).
 */
const TTS_VOICES = ['alloy', 'echo', 'fable', 'onyx', 'nova', 'shimmer'];
const GPT_TTS_VOICES = [...TTS_VOICES, 'ash', 'ballad', 'coral', 'sage', 'verse'];

export const SIM_MODELS = {
  'gpt-4o': { name: 'gpt-4o', reported: 'gpt-4o-2024-08-06', operations: ['chatCompletion', 'responses'] },
  // 1536 dimensions at most and 8192 tokens an input (Azure models.md, embeddings table; embeddings.md).
  'text-embedding-3-small': {
    name: 'text-embedding-3-small', reported: 'text-embedding-3-small', operations: ['embeddings'],
    embedding: { maxDimensions: 1536, maxInputTokens: 8192 },
  },
  'gpt-35-turbo-instruct': { name: 'gpt-35-turbo-instruct', reported: 'gpt-35-turbo-instruct', operations: ['completion'] },
  whisper: { name: 'whisper', reported: 'whisper', operations: ['audioTranscription', 'audioTranslation'] },
  'gpt-4o-mini-tts': { name: 'gpt-4o-mini-tts', reported: 'gpt-4o-mini-tts', operations: ['audioSpeech'], voices: GPT_TTS_VOICES },
  // "Must be one of 1024x1024, 1024x1536, or 1536x1024 for GPT-image-1 models" (azure-ai-docs how-to/dall-e.md).
  'gpt-image-1': {
    name: 'gpt-image-1', reported: 'gpt-image-1', operations: ['imageGenerations', 'imageEdits'],
    imageSizes: ['1024x1024', '1024x1536', '1536x1024'],
  },
  // Transcription only: Azure documents translations for whisper alone; undocumented for this model, so refused.
  'gpt-4o-transcribe': { name: 'gpt-4o-transcribe', reported: 'gpt-4o-transcribe', operations: ['audioTranscription'] },
  // "1024x1024, 1792x1024, or 1024x1792" and no edits for dall-e-3 (azure-ai-docs how-to/dall-e.md).
  'dall-e-3': { name: 'dall-e-3', reported: 'dall-e-3', operations: ['imageGenerations'], imageSizes: ['1024x1024', '1792x1024', '1024x1792'] },
  'gpt-4o-mini-realtime-preview': { name: 'gpt-4o-mini-realtime-preview', reported: 'gpt-4o-mini-realtime-preview', operations: [] },
} as const satisfies Record<string, SimModel>;

export type SimModelName = keyof typeof SIM_MODELS;

/**
 * The model a deployment runs: as configured, else guessed from the
 * deployment's name the way people name them ("…-embedding-…", "…-instruct",
 * "whisper…", "…-transcribe", "dall-e-3", "gpt-image-1", "img-…"), else a chat model.
 */
export function modelOf(deployment: string, configured?: Readonly<Record<string, SimModelName>>): SimModel {
  const named = configured?.[deployment];
  if (named) return SIM_MODELS[named];
  const d = deployment.toLowerCase();
  if (d.includes('embed')) return SIM_MODELS['text-embedding-3-small'];
  if (d.includes('instruct') || d.includes('davinci') || d.includes('babbage')) return SIM_MODELS['gpt-35-turbo-instruct'];
  if (d.includes('whisper')) return SIM_MODELS.whisper;
  if (d.includes('transcribe')) return SIM_MODELS['gpt-4o-transcribe'];
  if (d.includes('dall-e') || d.includes('dalle')) return SIM_MODELS['dall-e-3'];
  if (d.includes('tts')) return SIM_MODELS['gpt-4o-mini-tts'];
  if (d.includes('image') || d.includes('img')) return SIM_MODELS['gpt-image-1'];
  if (d.includes('realtime')) return SIM_MODELS['gpt-4o-mini-realtime-preview'];
  return SIM_MODELS['gpt-4o'];
}

/**
 * Azure's 400 for an operation the deployment's model does not serve, e.g.
 * embeddings on a chat deployment. Observed bodies (status 400, no type or
 * param): "The embeddings operation does not work with the specified model,
 * gpt-35-turbo. …" (OpenHands/OpenHands#1003), "The chatCompletion operation …
 * text-embedding-3-large" (langchain-ai/langmem#13), "The completion operation
 * … gpt-35-turbo" (Azure-Samples/azure-search-openai-demo-csharp#158).
 */
export function operationNotSupported(operation: AzureOperation, model: SimModel) {
  return {
    error: {
      code: 'OperationNotSupported',
      message: `The ${operation} operation does not work with the specified model, ${model.name}. Please choose different model and try again. You can learn more about which models can be used with each operation here: https://go.microsoft.com/fwlink/?linkid=2197993.`,
    },
  };
}
