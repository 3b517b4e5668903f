"""The component's glue: the contract's types in, `merge.Merge` underneath.

componentize-py looks up the world's export as `Transformer` here, and the
`transform` resource of the `transformer` interface as `Transform` in
`transformer.py`.
"""

from wit_world import exports
from wit_world.exports import transformer


class Transformer(exports.Transformer):
    def info(self) -> transformer.PluginInfo:
        return transformer.PluginInfo(name="python-transform", version="0.1.0")
