import ArgumentParser
import Cria
import Foundation

@main
struct CriaCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cria",
        abstract: "Transfer learning with MobileNetV2 on the CPU, Keras-exact.",
        version: CriaVersion.string,
        subcommands: [
            // Each subcommand lives in its own file; keep this list sorted.
            BenchCommand.self,
            CompareCommand.self,
            ConfigCommand.self,
            DataCommand.self,
            EvaluateCommand.self,
            ExportNotebookCommand.self,
            InspectCommand.self,
            PredictCommand.self,
            ReportCommand.self,
            RunCommand.self,
            SweepCommand.self,
            SystemCommand.self,
            ValidateCommand.self,
            WeightsCommand.self,
        ]
    )
}

/// Runs a subcommand body and turns any error into one line on stderr and exit status 1,
/// so that no Swift backtrace or library stack reaches the user.
func reportingErrors(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch let error as CleanExit {
        throw error
    } catch let error as ExitCode {
        throw error
    } catch let error as ValidationError {
        throw error
    } catch {
        FileHandle.standardError.write(Data("error: \(error)\n".utf8))
        throw ExitCode(1)
    }
}
