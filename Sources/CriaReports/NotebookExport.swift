import CriaCore
import Foundation

/// A Jupyter notebook (nbformat 4) telling an experiment's story.
public enum NotebookExport {
    public static func export(runDirectory: URL, to output: URL) throws {
        throw CriaError("cria export-notebook: not implemented yet")
    }
}
