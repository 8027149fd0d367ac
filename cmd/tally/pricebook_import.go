package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/big"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/tally-billing/tally/billing"
)

const importCostsUsage = `Usage: tally pricebook import-costs --file PRICES.json --models M1,M2 --margin PCT [flags]

Prices AI models from their provider's costs, so a product can price 30
models in a minute. PRICES.json is in the layout of LiteLLM's
model_prices_and_context_window.json (per-token input, cached input and
output costs per model, in USD). Each model becomes a feature priced per
dimension (input_tokens, cached_input_tokens, output_tokens) per 1,000
tokens, at the margin asked for at the credit price of --pack, with its cost
kept beside each price; a feature of the same key is updated (its name kept).

Without --publish the new price book is written to stdout as JSON, to read
and publish with 'tally pricebook publish --file'; a table of prices and
margins goes to stderr. With --publish it is published at once.

Exit codes: 0 done, 1 a model or price that cannot be imported, 2 usage.`

// cmdImportCosts is `tally pricebook import-costs`.
func cmdImportCosts(ctx context.Context, fs *flag.FlagSet, path *string, args []string, stdout, stderr io.Writer) error {
	file := fs.String("file", "", "provider prices in LiteLLM's layout (model_prices_and_context_window.json)")
	models := fs.String("models", "", "comma-separated model names, as the file's keys (gpt-4o,claude-3-5-sonnet-20241022)")
	margin := fs.String("margin", "", "margin to price at, in percent of the price (60 or 62.5)")
	packID := fs.String("pack", "", "credit pack whose credit price the margin is for (default: the price book's first pack)")
	publish := fs.Bool("publish", false, "publish the result as a new price book version")
	fs.Usage = func() { fmt.Fprintln(stderr, importCostsUsage); fs.PrintDefaults() }
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	if *file == "" || *models == "" || *margin == "" {
		return usageError{"pricebook import-costs needs --file, --models and --margin"}
	}
	bps, err := percentBps(*margin)
	if err != nil {
		return usageError{"--margin: " + err.Error()}
	}
	f, err := os.Open(*file)
	if err != nil {
		return err
	}
	defer f.Close()
	prices, err := billing.ReadProviderPrices(f)
	if err != nil {
		return fmt.Errorf("%s: %s", *file, billing.ErrorMessage(err))
	}
	d, err := openDB(ctx, *path, stderr)
	if err != nil {
		return err
	}
	defer d.Close()
	cur, err := d.CurrentPriceBook(ctx)
	if err != nil {
		return err
	}
	if cur == nil || len(cur.Packs) == 0 {
		return fmt.Errorf("the current price book has no credit pack to price against; publish one with packs first")
	}
	pack := cur.Packs[0]
	if *packID != "" {
		p, ok := cur.Pack(*packID)
		if !ok {
			return usageError{fmt.Sprintf("--pack: no pack %q in the current price book", *packID)}
		}
		pack = p
	}
	var names []string
	for _, m := range strings.Split(*models, ",") {
		if m = strings.TrimSpace(m); m != "" {
			names = append(names, m)
		}
	}
	features, err := billing.ImportProviderCosts(cur.Features, prices, billing.ImportRequest{Models: names, MarginBps: bps, Pack: pack})
	if err != nil {
		return fmt.Errorf("%s", billing.ErrorMessage(err))
	}
	next := *cur
	next.Version, next.Features = 0, features
	if err := next.Validate(); err != nil {
		return fmt.Errorf("%s", billing.ErrorMessage(err))
	}
	table := stderr
	if *publish {
		table = stdout
	}
	printImport(table, &next, names, cur.Packs)
	if !*publish {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(next)
	}
	out, changed, err := d.PublishPriceBook(ctx, next)
	if err != nil {
		return fmt.Errorf("%s", billing.ErrorMessage(err))
	}
	if !changed {
		fmt.Fprintf(stdout, "Unchanged: version %d already has these prices.\n", out.Version)
		return nil
	}
	fmt.Fprintf(stdout, "Published price book version %d: %d features, %d credit packs.\n", out.Version, len(out.Features), len(out.Packs))
	return nil
}

// printImport writes the imported models' prices and their margin at every pack.
func printImport(w io.Writer, pb *billing.PriceBook, models []string, packs []billing.CreditPack) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	head := "FEATURE\tDIMENSION\tCOST PER 1M\tCREDITS PER 1,000"
	for _, p := range packs {
		head += "\tMARGIN AT " + strings.ToUpper(p.ID)
	}
	fmt.Fprintln(tw, head)
	for _, m := range models {
		f, ok := pb.Feature(billing.ModelFeatureKey(m))
		if !ok {
			continue
		}
		for _, dim := range f.Dimensions {
			cost := "-"
			if dim.Cost != nil {
				cost = "$" + new(big.Rat).SetFrac64(dim.Cost.Micros, 1_000_000).FloatString(4)
			}
			line := fmt.Sprintf("%s\t%s\t%s\t%s", f.Key, dim.Key, cost, dim.Credits)
			for _, p := range packs {
				if bps, ok := billing.Margin(dim.Cost, dim.Credits, dim.UnitSize, p); ok {
					line += "\t" + billing.MarginText(bps)
				} else {
					line += "\t-"
				}
			}
			fmt.Fprintln(tw, line)
		}
	}
	tw.Flush()
}

// percentBps reads a percentage with at most two decimals as basis points
// (billing.ParseMarginPercent, as the admin console reads it).
func percentBps(s string) (int64, error) {
	bps, err := billing.ParseMarginPercent(s)
	if err != nil {
		return 0, fmt.Errorf("%s", billing.ErrorMessage(err))
	}
	return bps, nil
}
