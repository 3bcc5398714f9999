using System.Text;
using System.Text.RegularExpressions;

namespace RsCapRet.Evaluation;

/// <summary>
/// The tokenisation coco-caption applies before scoring: Stanford PTBTokenizer rules for caption text (lower-case,
/// punctuation and contractions split off), then coco's removal of punctuation tokens.
/// </summary>
public static partial class PtbTokenizer
{
    private static readonly HashSet<string> Removed =
        ["''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":", "-", "--", "...", ";"];

    // Contractions PTB splits off the word before them (lower-cased input).
    [GeneratedRegex(@"(?<=\w)(n't|'s|'re|'ve|'m|'ll|'d)\b")]
    private static partial Regex Contraction();

    // Tokens: words (with inner hyphens, apostrophes, periods in numbers/abbreviations), or single punctuation.
    [GeneratedRegex(@"\.\.\.|--|n't|'(?:s|re|ve|m|ll|d)\b|[\p{L}\p{N}]+(?:[-/&][\p{L}\p{N}]+)*(?:\.\d+)*|``|''|[^\s\p{L}\p{N}]")]
    private static partial Regex Token();

    public static string Tokenize(string caption)
    {
        var text = caption.ToLowerInvariant().Replace('\t', ' ').Replace('\n', ' ');
        text = Contraction().Replace(text, " $1");
        var tokens = new List<string>();
        foreach (Match m in Token().Matches(text))
        {
            // PTB escapes brackets; with -lowerCase they come out lower-cased, so coco's (upper-case) removal list
            // does not remove them: "-lrb-" etc. stay in the scored text, as in coco-caption.
            var t = m.Value switch
            {
                "(" => "-lrb-",
                ")" => "-rrb-",
                "{" => "-lcb-",
                "}" => "-rcb-",
                "[" => "-lsb-",
                "]" => "-rsb-",
                "\"" => "''",
                _ => m.Value,
            };
            if (!Removed.Contains(t)) tokens.Add(t);
        }
        return string.Join(' ', tokens);
    }
}
