/**
 * A model's chat template (`--chat-template`), rendered as transformers'
 * tokenizer.apply_chat_template(messages, tokenize=False,
 * add_generation_prompt=True) renders it: the template from the model folder's
 * chat_template.jinja (which transformers prefers) or tokenizer_config.json's
 * `chat_template` (a string, or a list of {name, template} of which "default"
 * is taken), the special tokens of tokenizer_config.json as variables
 * (bos_token, eos_token, ...); transformers' helpers raise_exception and
 * strftime_now are @huggingface/jinja's own (a maintained Jinja implementation
 * written for these templates, which does the rendering).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Template } from '@huggingface/jinja';
import { TokenizerError } from '../errors.js';
import type { ModelTokenizer } from '../model/tokenizer.js';

export interface ChatMessage {
  role: string;
  content: string;
}

const SPECIAL_KEYS = ['bos_token', 'eos_token', 'unk_token', 'pad_token', 'sep_token', 'cls_token', 'mask_token'];

export class ChatTemplate {
  /** Where the template came from (file, and the entry for named templates). */
  readonly source: string;
  private readonly template: Template;
  private readonly variables: Record<string, unknown>;

  private constructor(source: string, text: string, variables: Record<string, unknown>) {
    this.source = source;
    try {
      this.template = new Template(text);
    } catch (e) {
      throw new TokenizerError(source, 'InvalidChatTemplate', `the chat template does not parse (${e instanceof Error ? e.message : String(e)})`);
    }
    this.variables = variables;
  }

  /** The chat template of the tokenizer's model folder; a TokenizerError when it has none. */
  static load(tok: ModelTokenizer): ChatTemplate {
    const jinjaFile = join(tok.dir, 'chat_template.jinja');
    const cfgFile = join(tok.dir, 'tokenizer_config.json');
    const variables: Record<string, unknown> = {};
    for (const k of SPECIAL_KEYS) {
      const v = tok.config.get(k);
      const text = typeof v === 'string' ? v : typeof v === 'object' && v !== null ? (v as { content?: unknown }).content : undefined;
      if (typeof text === 'string') variables[k] = text;
    }
    if (existsSync(jinjaFile)) return new ChatTemplate(jinjaFile, readFileSync(jinjaFile, 'utf8'), variables);
    const t = tok.config.get('chat_template');
    if (typeof t === 'string') return new ChatTemplate(cfgFile, t, variables);
    if (Array.isArray(t)) {
      const named = t.find((x: unknown) => typeof x === 'object' && x !== null && (x as { name?: unknown }).name === 'default') as { template?: unknown } | undefined;
      if (named && typeof named.template === 'string') return new ChatTemplate(`${cfgFile} (chat_template "default")`, named.template, variables);
    }
    throw new TokenizerError(existsSync(cfgFile) ? cfgFile : jinjaFile, 'NoChatTemplate',
      '--chat-template: the model folder has no chat template (no chat_template.jinja, no chat_template in tokenizer_config.json)');
  }

  /** The rendered conversation, ending with the assistant's generation prompt. */
  render(messages: readonly ChatMessage[]): string {
    try {
      return this.template.render({
        ...this.variables,
        messages,
        add_generation_prompt: true,
      });
    } catch (e) {
      throw new TokenizerError(this.source, 'ChatTemplateFailed', `rendering the chat template failed (${e instanceof Error ? e.message : String(e)})`);
    }
  }

  /** A task prompt as one user message. */
  renderPrompt(prompt: string): string {
    return this.render([{ role: 'user', content: prompt }]);
  }
}
