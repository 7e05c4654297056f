/** The model card (README.md) written beside a merge, as mergekit writes one: what was merged, how, and the config. */
import { basename } from 'node:path';
import type { MergeConfig } from './config.js';
import type { MethodDescriptor } from './methods/index.js';

export function modelCard(c: MergeConfig, method: MethodDescriptor, yaml: string): string {
  const inputs = c.slices && c.slices.length > 0
    ? [...new Set(c.slices.flatMap((s) => s.sources.map((src) => src.path)))]
    : c.models.map((m) => m.path);
  const lines = [
    '---',
    'library_name: transformers',
    'tags:',
    '- merge',
    '- dfmerge',
    '---',
    `# ${basename(inputs[0] ?? 'merge')} merge`,
    '',
    `This model was merged with dfmerge using the **${method.name}** method (${method.reference}):`,
    '',
    `    ${method.formula}`,
    '',
    ...(c.base ? [`Base model: \`${c.base}\``, ''] : []),
    'Models merged:',
    '',
    ...inputs.filter((p) => p !== c.base).map((p) => `- \`${p}\``),
    '',
    '## Configuration',
    '',
    'The YAML configuration used (also saved as `dfmerge.yaml`; `dfmerge merge -c dfmerge.yaml` reproduces it):',
    '',
    '```yaml',
    yaml.trimEnd(),
    '```',
    '',
  ];
  return lines.join('\n');
}
