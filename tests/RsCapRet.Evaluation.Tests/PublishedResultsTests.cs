using RsCapRet.Core;
using RsCapRet.Evaluation;

namespace RsCapRet.Evaluation.Tests;

public class PublishedResultsTests
{
    private static string Reference => File.ReadAllText(Path.Combine(RepositoryPaths.SharedDirectory(), "reference", "published-results.md"));

    [Fact]
    public void UcmRowsOnlyFromEveryTableOfTheReferenceFile()
    {
        var text = PublishedResults.ForDataset(Reference, "ucm-captions");
        var rows = text.Split('\n').Where(l => l.StartsWith("| UCM")).ToList();
        Assert.Contains(rows, r => r.Contains("RS-CapRet") && r.Contains("3.429"));          // captioning table
        Assert.Contains(rows, r => r.Contains("CLIP-Cap-4 ViT-L") && r.Contains("53.84"));   // other-encoder table
        Assert.Contains(rows, r => r.Contains("KCR") && r.Contains("51.78"));                 // retrieval table
        Assert.DoesNotContain(text.Split('\n'), l => l.StartsWith("| RSICD"));
        Assert.Equal(3, text.Split('\n').Count(l => l.StartsWith("| dataset")));
    }

    [Fact]
    public void RsicdRowsAndNothingForAnUnknownDataset()
    {
        var text = PublishedResults.ForDataset(Reference, "rsicd");
        Assert.Contains("| RSICD | RS-CapRet | CLIP-Cap-4 ViT-L | Llama-2-7B | 0.741", text);
        Assert.DoesNotContain(text.Split('\n'), l => l.StartsWith("| UCM"));
        Assert.Equal("", PublishedResults.ForDataset(Reference, "my-own-captions"));
    }
}
