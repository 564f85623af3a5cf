"""Writes a tiny ONNX classifier: output = input (1x4) x W (4x3) + b, so the test knows
every score. Usage: python3 make_model.py OUT.onnx"""
import sys

import onnx
from onnx import TensorProto, helper

W = [1.0, 0.0, 0.0,
     0.0, 1.0, 0.0,
     0.0, 0.0, 1.0,
     0.5, 0.5, 0.5]
B = [0.0, 0.0, 0.25]
graph = helper.make_graph(
    [
        helper.make_node("MatMul", ["input", "W"], ["xw"]),
        helper.make_node("Add", ["xw", "B"], ["output"]),
    ],
    "wpkg-tiny-classifier",
    [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 4])],
    [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3])],
    initializer=[
        helper.make_tensor("W", TensorProto.FLOAT, [4, 3], W),
        helper.make_tensor("B", TensorProto.FLOAT, [3], B),
    ],
)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
model.ir_version = 8
onnx.checker.check_model(model)
onnx.save(model, sys.argv[1])
