// The umbrella module: `import Cria` brings in every public module, as
// `import keras` does, while each area stays its own small module.
@_exported import CriaCore
@_exported import CriaData
@_exported import CriaKerasIO
@_exported import CriaKernels
@_exported import CriaModel
@_exported import CriaTraining
@_exported import CriaRecords
@_exported import CriaReports
@_exported import CriaExperiments
@_exported import CriaWeights
@_exported import CriaBench

public enum CriaVersion {
    public static let string = "0.1.0"
}
