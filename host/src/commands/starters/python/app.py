"""{{name}}: a bitcram-sync transform component, built with componentize-py.

componentize-py looks up the world's export as `Transformer` here, and the
`transform` resource of the `transformer` interface as `Transform` in
`transformer.py`.
"""

from wit_world import exports
from wit_world.exports import transformer


class Transformer(exports.Transformer):
    def info(self) -> transformer.PluginInfo:
        return transformer.PluginInfo(name="{{name}}", version="0.1.0")
