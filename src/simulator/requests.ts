import { countTokens } from './content';
import { SimModel } from './models';
import { strictSchemaProblem } from './schema';

/**
 * Azure's 400s for invalid chat, completions and embeddings requests, checked
 * before anything is generated. Azure's chat validation speaks OpenAI's words
 * (status 400, type invalid_request_error, the parameter named in `param`);
 * each rule names where the answer was documented or observed. Where the exact
 * text is undocumented the simulator still refuses: the harsher thing.
 */
export interface AzureValidationError {
  error: { message: string; type: 'invalid_request_error'; param: string | null; code: string | null };
}

export const invalid = (message: string, param: string | null = null, code: string | null = null): AzureValidationError =>
  ({ error: { message, type: 'invalid_request_error', param, code } });

/**
 * "Missing required parameter: 'messages[1].function_call.name'." came from
 * Azure's chat endpoint in langchain-ai/langgraphjs#405; OpenAI's validator
 * words every missing parameter that way, with code missing_required_parameter.
 */
export const missing = (param: string) => invalid(`Missing required parameter: '${param}'.`, param, 'missing_required_parameter');

const ROLES = ['system', 'assistant', 'user', 'function', 'tool', 'developer'];

export function chatRequestProblem(body: Record<string, unknown>): AzureValidationError | undefined {
  const messages = body.messages;
  if (messages === undefined || messages === null) return missing('messages');
  if (!Array.isArray(messages)) return invalid(`Invalid type for 'messages': expected an array of objects, but got ${typeName(messages)} instead.`, 'messages', 'invalid_type');
  // Observed through Azure.AI.OpenAI in microsoft/agent-framework#2384.
  if (messages.length === 0) return invalid("Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.", 'messages', 'empty_array');
  for (let i = 0; i < messages.length; i++) {
    const m = messages[i] as Record<string, unknown> | null;
    if (typeof m !== 'object' || m === null || Array.isArray(m)) return invalid(`Invalid type for 'messages[${i}]': expected an object, but got ${typeName(m)} instead.`, `messages[${i}]`, 'invalid_type');
    if (m.role === undefined) return missing(`messages[${i}].role`);
    if (typeof m.role !== 'string' || !ROLES.includes(m.role)) {
      return invalid(`Invalid value: '${String(m.role)}'. Supported values are: ${ROLES.map((r) => `'${r}'`).join(', ')}.`, `messages[${i}].role`, 'invalid_value');
    }
  }
  return nProblem(body.n) ?? logprobsProblem(body) ?? toolsProblem(body) ?? responseFormatProblem(body);
}

/**
 * `stream_options` on a dated api-version before 2024-09-01-preview: Azure
 * answers 400 "Unrecognized request argument supplied: stream_options"
 * (reported for 2023-05-15 in openai/openai-python#1469 and for
 * 2024-05-01-preview in Azure/azure-rest-api-specs#29157; the 2024-10-21 GA
 * spec has it). The GA v1 form takes it.
 */
export function streamOptionsProblem(body: Record<string, unknown>, apiVersion: string | null): AzureValidationError | undefined {
  if (body.stream_options === undefined || apiVersion === null || apiVersion.slice(0, 10) >= '2024-09-01') return undefined;
  return invalid('Unrecognized request argument supplied: stream_options', null);
}

export function completionsRequestProblem(body: Record<string, unknown>): AzureValidationError | undefined {
  if (body.prompt === undefined || body.prompt === null) return missing('prompt');
  return nProblem(body.n);
}

export function embeddingsRequestProblem(body: Record<string, unknown>, model?: SimModel): AzureValidationError | undefined {
  const input = body.input;
  if (input === undefined || input === null) return missing('input');
  if (typeof input !== 'string' && !Array.isArray(input)) return invalid(`Invalid type for 'input': expected a string or an array, but got ${typeName(input)} instead.`, 'input', 'invalid_type');
  // Azure's embeddings reference: at most 2048 inputs per request.
  if (Array.isArray(input) && (input.length === 0 || input.length > 2048)) {
    return invalid(`Invalid 'input': array of ${input.length} items. Expected between 1 and 2048 inputs.`, 'input', 'invalid_value');
  }
  return emptyInputProblem(input) ?? encodingProblem(body.encoding_format) ?? dimensionsProblem(body.dimensions, model) ?? inputLengthProblem(input, model);
}

/**
 * An empty string, alone or in the array: Azure's embeddings endpoint answers
 * "'$.input' is invalid. Please check the API reference: …" (reported from an
 * Azure embedding deployment in a public project's notes; OpenAI's words, as
 * the body shows, with no param or code).
 */
function emptyInputProblem(input: unknown): AzureValidationError | undefined {
  const texts = Array.isArray(input) ? input : [input];
  if (!texts.some((t) => t === '' || (Array.isArray(t) && t.length === 0))) return undefined;
  return invalid("'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.");
}

/** "float" or "base64" (Azure's embeddings reference, encoding_format). The refusal's wording is OpenAI's enum form; Azure's is undocumented. */
function encodingProblem(format: unknown): AzureValidationError | undefined {
  if (format === undefined || format === null || format === 'float' || format === 'base64') return undefined;
  return invalid(`Invalid value: '${String(format)}'. Supported values are: 'float' and 'base64'.`, 'encoding_format', 'invalid_value');
}

/**
 * 1 up to the model's full size (Azure's embeddings reference: dimensions is
 * "only supported in text-embedding-3 and later models"; the sizes are in
 * models.md). Azure's words for a refusal are undocumented: OpenAI's range form.
 */
function dimensionsProblem(dimensions: unknown, model: SimModel | undefined): AzureValidationError | undefined {
  if (dimensions === undefined || dimensions === null) return undefined;
  // Azure's words for text-embedding-ada-002 (microsoft/kernel-memory#805).
  if (!model?.embedding) return invalid('This model does not support specifying dimensions.', 'dimensions');
  if (!Number.isInteger(dimensions)) return invalid(`Invalid type for 'dimensions': expected an integer, but got ${typeName(dimensions)} instead.`, 'dimensions', 'invalid_type');
  const max = model.embedding.maxDimensions;
  if ((dimensions as number) < 1) return invalid(`Invalid 'dimensions': integer below minimum value. Expected a value >= 1, but got ${dimensions} instead.`, 'dimensions', 'integer_below_min_value');
  if ((dimensions as number) > max) return invalid(`Invalid 'dimensions': integer above maximum value. Expected a value <= ${max}, but got ${dimensions} instead.`, 'dimensions', 'integer_above_max_value');
  return undefined;
}

/**
 * One input over the model's token limit (8192 for text-embedding-3-*, Azure
 * models.md): Azure's text as microsoft/PubSec-Info-Assistant#755 shows it.
 * Without a tokenizer the count is the larger of words and characters / 4.
 */
function inputLengthProblem(input: string | unknown[], model: SimModel | undefined): AzureValidationError | undefined {
  const limit = model?.embedding?.maxInputTokens;
  if (limit === undefined) return undefined;
  const texts = typeof input === 'string' || input.every((t) => typeof t === 'number') ? [input] : input;
  const tokens = Math.max(0, ...texts.map(estimatedTokens));
  if (tokens <= limit) return undefined;
  return invalid(`This model's maximum context length is ${limit} tokens, however you requested ${tokens} tokens (${tokens} in your prompt; 0 for the completion). Please reduce your prompt; or completion length.`);
}

/** A token array counts its tokens; text counts whichever estimate is larger. */
function estimatedTokens(input: unknown): number {
  if (Array.isArray(input)) return input.length;
  const text = String(input);
  return Math.max(countTokens(text), Math.ceil(text.length / 4));
}

/** `n`: 1 to 128 choices (Azure's chat completions reference, "n": minimum 1, maximum 128). */
function nProblem(n: unknown): AzureValidationError | undefined {
  if (n === undefined || n === null) return undefined;
  if (!Number.isInteger(n)) return invalid(`Invalid type for 'n': expected an integer, but got ${typeName(n)} instead.`, 'n', 'invalid_type');
  if ((n as number) < 1) return invalid(`Invalid 'n': integer below minimum value. Expected a value >= 1, but got ${n} instead.`, 'n', 'integer_below_min_value');
  if ((n as number) > 128) return invalid(`Invalid 'n': integer above maximum value. Expected a value <= 128, but got ${n} instead.`, 'n', 'integer_above_max_value');
  return undefined;
}

/**
 * `top_logprobs`: 0 to 20, and only with `logprobs: true` (Azure's chat
 * completions reference: "logprobs must be set to true if this parameter is used").
 */
function logprobsProblem(body: Record<string, unknown>): AzureValidationError | undefined {
  const top = body.top_logprobs;
  if (top === undefined || top === null) return undefined;
  if (!Number.isInteger(top) || (top as number) < 0 || (top as number) > 20) {
    return invalid(`Invalid 'top_logprobs': expected an integer from 0 to 20, but got ${JSON.stringify(top)} instead.`, 'top_logprobs', 'invalid_value');
  }
  if (body.logprobs !== true) return invalid("Invalid value for 'top_logprobs': 'logprobs' must be set to true when 'top_logprobs' is used.", 'top_logprobs', 'invalid_value');
  return undefined;
}

export interface FunctionTool {
  readonly name: string;
  readonly parameters?: unknown;
  readonly strict?: boolean;
}

/** The function tools of a request (validated first). */
export function functionTools(body: Record<string, unknown>): FunctionTool[] {
  return Array.isArray(body.tools) ? body.tools.map((t: { function: FunctionTool }) => t.function) : [];
}

function toolsProblem(body: Record<string, unknown>): AzureValidationError | undefined {
  const tools = body.tools;
  if (tools !== undefined && tools !== null) {
    if (!Array.isArray(tools)) return invalid(`Invalid type for 'tools': expected an array of objects, but got ${typeName(tools)} instead.`, 'tools', 'invalid_type');
    for (let i = 0; i < tools.length; i++) {
      const t = tools[i] as { type?: unknown; function?: { name?: unknown; parameters?: unknown; strict?: unknown } } | null;
      if (t?.type !== 'function') return invalid(`Invalid value: '${String(t?.type)}'. Supported values are: 'function'.`, `tools[${i}].type`, 'invalid_value');
      if (typeof t.function?.name !== 'string' || !/^[A-Za-z0-9_-]{1,64}$/.test(t.function.name)) {
        return t.function?.name === undefined ? missing(`tools[${i}].function.name`) : invalid(`Invalid 'tools[${i}].function.name': string does not match pattern. Expected a string that matches the pattern '^[a-zA-Z0-9_-]+$'.`, `tools[${i}].function.name`, 'invalid_value');
      }
      if (t.function.strict === true) {
        const problem = strictSchemaProblem(t.function.parameters ?? {});
        if (problem) return invalid(`Invalid schema for function '${t.function.name}': ${problem}`, `tools[${i}].function.parameters`, 'invalid_function_parameters');
      }
    }
  }
  const choice = body.tool_choice;
  if (choice === undefined || choice === null) return undefined;
  // OpenAI's answer to tool_choice without tools; Azure's text is undocumented, so it refuses as OpenAI does.
  if (!Array.isArray(tools) || tools.length === 0) return invalid("Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.", 'tool_choice');
  if (typeof choice === 'string') {
    return ['none', 'auto', 'required'].includes(choice) ? undefined : invalid(`Invalid value: '${choice}'. Supported values are: 'none', 'auto', and 'required'.`, 'tool_choice', 'invalid_value');
  }
  const name = (choice as { function?: { name?: unknown } }).function?.name;
  if (typeof name !== 'string') return missing('tool_choice.function.name');
  if (!functionTools(body).some((f) => f.name === name)) return invalid(`Invalid value for 'tool_choice': no function named '${name}' was specified in 'tools'.`, 'tool_choice', 'invalid_value');
  return undefined;
}

function responseFormatProblem(body: Record<string, unknown>): AzureValidationError | undefined {
  const format = body.response_format as { type?: unknown; json_schema?: { name?: unknown; schema?: unknown; strict?: unknown } } | undefined | null;
  if (format === undefined || format === null) return undefined;
  switch (format.type) {
    case 'text':
      return undefined;
    case 'json_object':
      // Azure (gpt-4.1, api-version 2025-01-01-preview) in openai/openai-agents-js#71; body as in mem0ai/mem0#3559.
      if (!JSON.stringify(body.messages).toLowerCase().includes('json')) {
        return invalid("'messages' must contain the word 'json' in some form, to use 'response_format' of type 'json_object'.", 'messages');
      }
      return undefined;
    case 'json_schema': {
      // "Missing required parameter: 'response_format.json_schema'" from Azure (portkey.ai error library, azure-openai #10482).
      if (!format.json_schema) return missing('response_format.json_schema');
      if (typeof format.json_schema.name !== 'string') return missing('response_format.json_schema.name');
      if (format.json_schema.strict === true) {
        const problem = strictSchemaProblem(format.json_schema.schema ?? {});
        if (problem) return invalid(`Invalid schema for response_format '${format.json_schema.name}': ${problem}`, 'response_format');
      }
      return undefined;
    }
    default:
      return invalid(`Invalid value: '${String(format.type)}'. Supported values are: 'text', 'json_object', and 'json_schema'.`, 'response_format.type', 'invalid_value');
  }
}

/** A value's JSON type as OpenAI's validator words it: "an integer", "a string", "an object". */
export function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return 'an object';
  if (Number.isInteger(v)) return 'an integer';
  return `a ${typeof v}`;
}
