"""A Python transform that looks for a way out of the sandbox (a test plugin):
see transformer.py."""

from wit_world import exports
from wit_world.exports import transformer


class Transformer(exports.Transformer):
    def info(self) -> transformer.PluginInfo:
        return transformer.PluginInfo(name="test-python-nosy", version="0.0.0")
