/**
 * The subset of the OpenAI chat-completions protocol Neurolens speaks. Any OpenAI-compatible
 * server (OpenAI, vLLM, Ollama, llama.cpp server, LM Studio) accepts requests of this shape.
 */
export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

export interface ChatRequest {
  model: string;
  messages: ChatMessage[];
  temperature?: number;
  top_p?: number;
  n?: number;
  max_tokens?: number;
  /** Reasoning models reject max_tokens and want this instead. */
  max_completion_tokens?: number;
  logprobs?: boolean;
  top_logprobs?: number;
  seed?: number;
  stop?: string[];
  response_format?:
    | { type: 'json_object' }
    | { type: 'json_schema'; json_schema: { name: string; schema: unknown; strict?: boolean } };
  /** vLLM extension: log-probabilities of the prompt tokens. */
  prompt_logprobs?: number;
  /** vLLM extensions used by the prompt-logprob simulator. */
  echo?: boolean;
  add_generation_prompt?: boolean;
  continue_final_message?: boolean;
}

export interface TopLogprob {
  token: string;
  logprob: number;
  bytes: number[] | null;
}

export interface TokenLogprob extends TopLogprob {
  top_logprobs: TopLogprob[];
}

export interface ChatChoice {
  index: number;
  message: { role: 'assistant'; content: string | null; refusal?: string | null };
  finish_reason: string | null;
  logprobs?: { content: TokenLogprob[] | null } | null;
}

export interface ChatUsage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens?: number;
}

export interface ChatResponse {
  id?: string;
  model?: string;
  choices: ChatChoice[];
  usage?: ChatUsage;
  /** vLLM: one entry per prompt token (null for the first), each mapping token id to logprob info. */
  prompt_logprobs?: (Record<string, { logprob: number; rank?: number; decoded_token?: string }> | null)[] | null;
}

/** What the explain/simulate/score code needs from an LLM client: one completion per call. */
export interface ChatCompleter {
  complete(request: ChatRequest, options?: { signal?: AbortSignal }): Promise<ChatResponse>;
}
