/** ONNX import and export (opset 13–17, torchvision / timm operator set). */
export { importOnnx, importOnnxBytes, ONNX_SUPPORTED_OPS, type ImportOnnxOptions } from './import.js';
export { exportOnnx, exportOnnxBytes, type ExportOnnxOptions } from './export.js';
export { EXPORT_RULES } from './export-ops.js';
