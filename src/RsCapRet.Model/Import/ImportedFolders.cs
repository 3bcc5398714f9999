using RsCapRet.Model.Checkpoints;

namespace RsCapRet.Model.Import;

/// <summary>The check that a backbone folder exists before it is loaded, saying how to import it when it can be.</summary>
public static class ImportedFolders
{
    /// <param name="what">What the folder holds, in the error ("vision backbone", "text encoder").</param>
    /// <param name="importable">Whether <c>rscapret import-backbone</c> knows a folder of this name.</param>
    public static void Require(string directory, string what, Func<string, bool> importable)
    {
        if (Directory.Exists(directory)) return;
        var name = Path.GetFileName(Path.TrimEndingDirectorySeparator(directory));
        var hint = importable(name)
            ? $" — import it with `rscapret import-backbone {name} --out {directory}` (scripts/bootstrap.sh does this)" : "";
        throw new CheckpointException(directory, $"{what} folder does not exist" + hint);
    }
}
