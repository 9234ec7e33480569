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
  const unrecognized = unrecognizedChatArgumentsProblem(body);
  if (unrecognized) return unrecognized;
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
      return unsupportedValue(m.role, quotedList(ROLES), `messages[${i}].role`);
    }
    const problem = contentProblem(m, i);
    if (problem) return problem;
  }
  return toolTurnsProblem(messages as ChatMessage[]) ?? typesProblem(body, CHAT_BOOLEANS, 'boolean') ?? nProblem(body.n) ?? logprobsProblem(body) ?? temperatureProblem(body.temperature)
    ?? toolsProblem(body) ?? responseFormatProblem(body) ?? streamWithoutStreamingProblem(body);
}

/**
 * The top-level parameters of a chat completions request: OpenAI's
 * CreateChatCompletionRequest plus Azure's own (data_sources,
 * user_security_context; Azure's 2025-04-01-preview inference spec). `model`
 * is taken on every form, as the OpenAI SDKs send it.
 */
const CHAT_PARAMETERS = new Set([
  'audio', 'data_sources', 'frequency_penalty', 'function_call', 'functions', 'logit_bias', 'logprobs', 'max_completion_tokens',
  'max_tokens', 'messages', 'metadata', 'modalities', 'model', 'n', 'parallel_tool_calls', 'prediction', 'presence_penalty',
  'prompt_cache_key', 'reasoning_effort', 'response_format', 'safety_identifier', 'seed', 'service_tier', 'stop', 'store', 'stream',
  'stream_options', 'temperature', 'tool_choice', 'tools', 'top_logprobs', 'top_p', 'user', 'user_security_context', 'verbosity',
  'web_search_options', 'prompt_cache_retention', 'prompt_cache_options', 'moderation',
]);

/**
 * Any other parameter: Azure's dated api-versions answer "Unrecognized request
 * argument supplied: functions" (MicrosoftDocs/azure-docs#112948,
 * openai/openai-python#1354 for dataSources), several at once "Unrecognized
 * request arguments supplied: frequencyPenalty, presencePenalty, topP"
 * (quarkiverse/quarkus-langchain4j#285), with no param or code. api.openai.com
 * answers the same (davidmigloz/langchain_dart#712); what the GA v1 form does
 * is undocumented, so it refuses too.
 */
function unrecognizedChatArgumentsProblem(body: Record<string, unknown>): AzureValidationError | undefined {
  const unknown = Object.keys(body).filter((k) => !CHAT_PARAMETERS.has(k)).sort();
  if (unknown.length === 0) return undefined;
  return invalid(unknown.length === 1 ? `Unrecognized request argument supplied: ${unknown[0]}` : `Unrecognized request arguments supplied: ${unknown.join(', ')}`);
}

interface ChatMessage {
  readonly role: string;
  readonly content?: unknown;
  readonly tool_calls?: unknown;
  readonly function_call?: unknown;
  readonly tool_call_id?: unknown;
}

/**
 * The content part types each role takes (OpenAI's spec: the
 * ChatCompletionRequest{User,System,Developer,Assistant,Tool}MessageContentPart
 * unions; Azure's reference documents the same per role).
 */
const PART_TYPES: Readonly<Record<string, readonly string[]>> = {
  user: ['text', 'image_url', 'input_audio', 'file'],
  system: ['text'],
  developer: ['text'],
  assistant: ['text', 'refusal'],
  tool: ['text'],
  // The deprecated function role (content: string | null in OpenAI's spec).
  function: ['text'],
};

function isSet(v: unknown): boolean {
  return v !== undefined && v !== null;
}

/** OpenAI's refusal of a value outside its list (`supported`, the list as written: supportedValues or quotedList). */
export function unsupportedValue(value: unknown, supported: string, param: string): AzureValidationError {
  return invalid(`Invalid value: '${String(value)}'. Supported values are: ${supported}.`, param, 'invalid_value');
}

/** The values quoted and joined by commas alone: 'a', 'b', 'c'. */
export function quotedList(values: readonly string[]): string {
  return values.map((v) => `'${v}'`).join(', ');
}

/** OpenAI's list of supported values: 'a', 'a' and 'b', 'a', 'b', and 'c'. */
function supportedValues(values: readonly string[]): string {
  const quoted = values.map((v) => `'${v}'`);
  if (quoted.length < 3) return quoted.join(' and ');
  return `${quoted.slice(0, -1).join(', ')}, and ${quoted.at(-1)}`;
}

/**
 * One message's content. Content is required of user, system, developer and
 * tool messages, and of an assistant message without tool_calls,
 * function_call, audio or refusal (OpenAI's spec: "Required unless tool_calls
 * or function_call is specified", and audio multi-turn sends `audio: { id }`
 * alone); it is a string or a non-empty array of the role's parts.
 */
function contentProblem(m: Record<string, unknown>, i: number): AzureValidationError | undefined {
  const at = `messages[${i}].content`;
  const content = m.content;
  // An assistant turn may carry its calls, its audio (by id) or a refusal instead of content; a function message's content may be null (OpenAI's spec).
  const contentOptional = m.role === 'function' || (m.role === 'assistant' && (
    (Array.isArray(m.tool_calls) && m.tool_calls.length > 0) || isSet(m.function_call) || isSet(m.audio) || isSet(m.refusal)));
  if (content === undefined && !contentOptional) return missing(at);
  if (content === null) {
    if (contentOptional) return undefined;
    // Azure's words and param for a null content (gpt-4o through Azure.AI.OpenAI, langchain-ai/langchainjs#4153).
    return invalid("Invalid value for 'content': expected a string, got null.", `messages.[${i}].content`);
  }
  if (m.role === 'tool' && (m.tool_call_id === undefined || m.tool_call_id === null)) return missing(`messages[${i}].tool_call_id`);
  if (content === undefined || typeof content === 'string') return undefined;
  // OpenAI's validator words (seen reproduced in coze-dev/coze-studio#2317); Azure's text for this case is undocumented.
  if (!Array.isArray(content)) return invalid(`Invalid type for '${at}': expected one of a string or array of objects, but got ${typeName(content)} instead.`, at, 'invalid_type');
  // The same words as for an empty 'messages' (observed from Azure in microsoft/agent-framework#2384).
  if (content.length === 0) return invalid(`Invalid '${at}': empty array. Expected an array with minimum length 1, but got an empty array instead.`, at, 'empty_array');
  const allowed = PART_TYPES[m.role as string] ?? ['text'];
  for (let j = 0; j < content.length; j++) {
    const part = content[j] as Record<string, unknown> | null;
    const partAt = `${at}[${j}]`;
    if (typeof part !== 'object' || part === null || Array.isArray(part)) return invalid(`Invalid type for '${partAt}': expected an object, but got ${typeName(part)} instead.`, partAt, 'invalid_type');
    // "Missing required parameter: 'messages[3].content[0].type'." from OpenAI (langchain-ai/langgraphjs#506, neuron-core/neuron-ai#292).
    if (part.type === undefined) return missing(`${partAt}.type`);
    // "Invalid value: 'image'. Supported values are: 'text' and 'image_url'." with param messages[0].content[1].type (aallam/openai-kotlin#320).
    if (typeof part.type !== 'string' || !allowed.includes(part.type)) return unsupportedValue(part.type, supportedValues(allowed), `${partAt}.type`);
    if (part.type === 'text' && typeof part.text !== 'string') return part.text === undefined ? missing(`${partAt}.text`) : invalid(`Invalid type for '${partAt}.text': expected a string, but got ${typeName(part.text)} instead.`, `${partAt}.text`, 'invalid_type');
    if (part.type === 'image_url' && typeof (part.image_url as { url?: unknown } | undefined)?.url !== 'string') return missing(`${partAt}.image_url.url`);
  }
  return undefined;
}

/**
 * Tool results and the calls they answer. A tool message must follow an
 * assistant message with tool_calls (or another tool message after one):
 * "Invalid parameter: messages with role 'tool' must be a response to a
 * preceeding message with 'tool_calls'." (OpenAI's spelling, param
 * messages.[3].role, code null: miurla/morphic#136, smarter-sh/smarter#264);
 * its tool_call_id must be one of those calls: "Invalid parameter:
 * 'tool_call_id' of 'call_…' not found in 'tool_calls' of previous message."
 * (dapr/dapr-agents#145; the param there is undocumented). Every call must be
 * answered before the next other message: "An assistant message with
 * 'tool_calls' must be followed by tool messages responding to each
 * 'tool_call_id'. The following tool_call_ids did not have response messages:
 * call_…" (param messages.[6].role, code null: router-for-me/CLIProxyAPI#2798,
 * sdcb/chats#132). A conversation that ends on unanswered calls is refused too:
 * undocumented, so the harsher thing.
 */
function toolTurnsProblem(messages: readonly ChatMessage[]): AzureValidationError | undefined {
  let turn: { ids: Set<string>; open: string[] } | undefined;
  const unanswered = (open: string[], i: number) =>
    invalid(`An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. The following tool_call_ids did not have response messages: ${open.join(', ')}`, `messages.[${i}].role`);
  for (let i = 0; i < messages.length; i++) {
    const m = messages[i];
    if (m.role === 'tool') {
      if (!turn) return invalid("Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls'.", `messages.[${i}].role`);
      const id = String(m.tool_call_id);
      if (!turn.ids.has(id)) return invalid(`Invalid parameter: 'tool_call_id' of '${id}' not found in 'tool_calls' of previous message.`, `messages.[${i}].tool_call_id`);
      turn.open = turn.open.filter((open) => open !== id);
      continue;
    }
    if (turn && turn.open.length > 0) return unanswered(turn.open, i);
    const calls = m.role === 'assistant' && Array.isArray(m.tool_calls) ? (m.tool_calls as { id?: unknown }[]) : [];
    turn = calls.length > 0 ? { ids: new Set(calls.map((c) => String(c?.id))), open: calls.map((c) => String(c?.id)) } : undefined;
  }
  if (turn && turn.open.length > 0) return unanswered(turn.open, messages.length - 1);
  return undefined;
}

/**
 * `temperature`: a number from 0 to 2 (Azure's chat completions reference,
 * "What sampling temperature to use, between 0 and 2"). The words are
 * OpenAI-style, after the integer range form above; Azure's are undocumented.
 */
function temperatureProblem(t: unknown): AzureValidationError | undefined {
  return decimalRangeProblem('temperature', t, 0, 2);
}

/** A number parameter outside [min, max] (or not a number), in OpenAI's validator's words; `shownMax` as the reference writes it ("4.0"). */
export function decimalRangeProblem(param: string, value: unknown, min: number, max: number, shownMax = String(max)): AzureValidationError | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number') return invalid(`Invalid type for '${param}': expected a number, but got ${typeName(value)} instead.`, param, 'invalid_type');
  if (value < min) return invalid(`Invalid '${param}': decimal below minimum value. Expected a value >= ${min}, but got ${value} instead.`, param, 'decimal_below_min_value');
  if (value > max) return invalid(`Invalid '${param}': decimal above maximum value. Expected a value <= ${shownMax}, but got ${value} instead.`, param, 'decimal_above_max_value');
  return undefined;
}

/**
 * `stream_options` on a request that does not stream: "The 'stream_options'
 * parameter is only allowed when 'stream' is enabled." with param
 * stream_options, code null (OpenAI's answer, relayed in BerriAI/litellm#5803).
 */
function streamWithoutStreamingProblem(body: Record<string, unknown>): AzureValidationError | undefined {
  if (body.stream_options === undefined || body.stream_options === null || body.stream === true) return undefined;
  return invalid("The 'stream_options' parameter is only allowed when 'stream' is enabled.", 'stream_options');
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

/** Chat's parameters that OpenAI's spec (CreateChatCompletionRequest) types as booleans. */
const CHAT_BOOLEANS = ['stream', 'logprobs', 'parallel_tool_calls', 'store'];

/**
 * A parameter given as another type than its own ("stream": "yes", which a
 * kinder server would take as false): OpenAI's validator's words, for chat
 * and the Responses API alike.
 */
export function typesProblem(body: Record<string, unknown>, names: readonly string[], type: 'boolean' | 'string'): AzureValidationError | undefined {
  const name = names.find((n) => body[n] !== undefined && body[n] !== null && typeof body[n] !== type);
  return name === undefined ? undefined : invalid(`Invalid type for '${name}': expected a ${type}, but got ${typeName(body[name])} instead.`, name, 'invalid_type');
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

/**
 * The functions a model calls, chat's and the Responses API's alike: the one
 * tool_choice names; else each the user's words mention (one, unless
 * parallel_tool_calls is off), or the first.
 */
export function chooseTools<T extends { readonly name: string }>(tools: readonly T[], named: string | undefined, said: string, parallel: unknown): T[] {
  if (named !== undefined) return tools.filter((t) => t.name === named);
  const words = said.toLowerCase();
  const mentioned = tools.filter((t) => words.includes(t.name.toLowerCase()));
  return mentioned.length === 0 ? [tools[0]] : parallel === false ? mentioned.slice(0, 1) : mentioned;
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
