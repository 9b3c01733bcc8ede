package publish_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/hasses-go/hasses/publish"
)

// The README shows the body of this example (itest/readme_test.go checks
// it is the same), so the snippet there compiles. It has no Output: it
// needs a server with -pub=127.0.0.1:8086.
func ExampleClient_Publish() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	client := &publish.Client{URL: "http://127.0.0.1:8086/publish", Secret: os.Getenv("HASSES_CTL_SECRET")}
	res, err := client.Publish(ctx, publish.Message{Tokens: []string{"room1"}, Data: "hello", Event: "update"})
	if err != nil {
		log.Fatal(err) // e.g. "401 Unauthorized: missing or wrong secret: ..."
	}
	fmt.Println(res.IDs[0], res.Receivers) // the event id, and how many streams got it
}

// PublishTCP sends the same message to the control port.
func ExamplePublishTCP() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := publish.PublishTCP(ctx, "127.0.0.1:8085", os.Getenv("HASSES_CTL_SECRET"), publish.Message{Token: "room1", Data: "hello"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.IDs[0], res.Receivers)
}
